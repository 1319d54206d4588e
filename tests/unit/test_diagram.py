"""Notebook 00's architecture diagram: readable (no crossings, arrows end on boxes) and still the template's app."""

import matplotlib
import pytest

from localcloud import read_template
from workshop import config, diagram

matplotlib.use("Agg")


def crosses(p, q, r, s) -> bool:
    """Whether segments pq and rs meet anywhere but at an endpoint they share."""
    def orient(a, b, c):
        value = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return 0 if abs(value) < 1e-9 else (1 if value > 0 else -1)

    def on(a, b, c):  # c on segment ab, given collinear
        return min(a[0], b[0]) - 1e-9 <= c[0] <= max(a[0], b[0]) + 1e-9 and min(a[1], b[1]) - 1e-9 <= c[1] <= max(a[1], b[1]) + 1e-9

    shared = {p, q} & {r, s}
    if shared:  # touching at a shared end is a junction; overlapping beyond it is not
        (c,) = shared if len(shared) == 1 else (None,)
        if c is None:
            return True
        other1, other2 = (q if c == p else p), (s if c == r else r)
        return orient(c, other1, other2) == 0 and (on(c, other1, other2) or on(c, other2, other1))
    o1, o2, o3, o4 = orient(p, q, r), orient(p, q, s), orient(r, s, p), orient(r, s, q)
    if o1 != o2 and o3 != o4 and 0 not in (o1, o2, o3, o4):
        return True
    return (o1 == 0 and on(p, q, r)) or (o2 == 0 and on(p, q, s)) or (o3 == 0 and on(r, s, p)) or (o4 == 0 and on(r, s, q))


def on_edge(point, box) -> bool:
    x, y = point
    x0, y0, x1, y1 = box
    inside = x0 - 1e-6 <= x <= x1 + 1e-6 and y0 - 1e-6 <= y <= y1 + 1e-6
    return inside and min(abs(x - x0), abs(x - x1), abs(y - y0), abs(y - y1)) < 1e-6


def through(segment, box) -> bool:
    """Whether a segment passes through the inside of a box (a few samples along it)."""
    (xa, ya), (xb, yb) = segment
    x0, y0, x1, y1 = box
    return any(x0 + 1e-6 < xa + t * (xb - xa) < x1 - 1e-6 and y0 + 1e-6 < ya + t * (yb - ya) < y1 - 1e-6
               for t in (i / 50 for i in range(1, 50)))


@pytest.fixture(scope="module")
def drawn():
    return diagram.layout()


@pytest.fixture(scope="module")
def rendered():
    """What draw() put on the axes, in data coordinates: boxes by label, every line segment, every arrow head."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.text import Annotation

    fig, ax = plt.subplots(figsize=(13, 6.2))
    try:
        diagram.draw(ax=ax)
        fig.canvas.draw()
        to_data = ax.transData.inverted()
        rects = [(p.get_x(), p.get_y(), p.get_x() + p.get_width(), p.get_y() + p.get_height())
                 for p in ax.patches if isinstance(p, FancyBboxPatch)]
        boxes = {}
        for text in ax.texts:
            if isinstance(text, Annotation):
                continue
            if text.get_bbox_patch() is not None:  # a label drawn with a box around it
                (x0, y0), (x1, y1) = to_data.transform(text.get_bbox_patch().get_window_extent().get_points())
                boxes[text.get_text()] = (x0, y0, x1, y1)
            else:
                x, y = text.get_position()
                boxes.update({text.get_text(): r for r in rects if r[0] < x < r[2] and r[1] < y < r[3]})
        heads = [(tuple(map(float, a.xyann)), tuple(map(float, a.xy))) for a in ax.texts if isinstance(a, Annotation)]
        lines = [tuple(map(tuple, line.get_xydata().tolist())) for line in ax.lines]
    finally:
        plt.close(fig)
    segments = heads + [seg for points in lines for seg in zip(points, points[1:])]
    return boxes, segments, heads


def box_named(boxes, word):
    return [box for label, box in boxes.items() if label.split("\n")[0] == word]


def test_the_crossing_check_sees_crossings_and_accepts_junctions():
    assert crosses((0, 0), (2, 2), (0, 2), (2, 0))
    assert crosses((0, 0), (2, 0), (1, 0), (3, 0))  # overlapping on one line
    assert not crosses((0, 0), (1, 1), (1, 1), (2, 0))  # a shared end
    assert not crosses((0, 0), (1, 0), (0, 1), (1, 1))


def test_no_two_drawn_lines_cross(rendered):
    _, segments, _ = rendered
    crossing = [(a, b) for i, a in enumerate(segments) for b in segments[i + 1:] if crosses(*a, *b)]
    assert crossing == []


def test_every_drawn_line_ends_on_a_box_edge_or_turns_into_the_next(rendered):
    boxes, segments, heads = rendered
    ends = [point for segment in segments for point in segment]
    loose = [p for p in ends if not any(on_edge(p, box) for box in boxes.values()) and ends.count(p) != 2]
    assert loose == []
    assert all(any(on_edge(head, box) for box in boxes.values()) for _, head in heads)


def test_no_line_runs_through_a_box(drawn):
    for arrow in drawn.arrows:
        for name, box in drawn.boxes.items():
            assert not any(through(seg, box) for seg in arrow.segments()), (arrow.start, arrow.end, name)


def test_every_function_of_the_template_has_a_box(rendered):
    boxes, _, _ = rendered
    template = read_template(config.template_path())
    functions = [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    assert [f for f in functions if not box_named(boxes, f.removesuffix("Function"))] == []


def test_the_client_uploads_to_and_downloads_from_s3_directly(rendered):
    boxes, segments, heads = rendered
    (client,) = box_named(boxes, "client")
    for bucket in ("PhotosBucket", "ThumbnailsBucket"):  # a path of segments from the client's edge to the bucket's
        (target,) = box_named(boxes, bucket)
        reached = {p for seg in segments for p in seg if on_edge(p, client)}
        for _ in range(len(segments)):
            reached |= {b for a, b in segments if a in reached}
        assert any(on_edge(head, target) and tail in reached for tail, head in heads), bucket


def test_every_wire_of_the_template_is_an_arrow_and_only_triggers_are_dashed(drawn):
    template = read_template(config.template_path())
    wires = diagram.wiring(template)
    pairs = {(a.start, a.end) for a in drawn.arrows}
    drawn_out = {f: u for f, u in wires["uses"].items() if f not in diagram._SUMMARISED}  # those say it in words
    expected = {("api", f) for f in wires["routes"]} | {(f, s) for f, uses in drawn_out.items() for s in uses} \
        | {(s, f) for f, sources in wires["triggers"].items() for s in sources}
    assert expected <= pairs
    events = {(a.start, a.end) for a in drawn.arrows if a.dashed}
    assert events == {(s, f) for f, sources in wires["triggers"].items() for s in sources}


def test_a_function_added_to_the_template_without_a_place_is_a_clear_error(tmp_path):
    text = config.template_path().read_text().replace(
        "  PingFunction:\n", "  EchoFunction:\n    Type: AWS::Serverless::Function\n    Properties: {Handler: x.y}\n"
        "  PingFunction:\n", 1)
    (tmp_path / "template.yaml").write_text(text)
    with pytest.raises(ValueError, match="EchoFunction"):
        diagram.layout(tmp_path / "template.yaml")


def test_draw_renders_exactly_the_layout(drawn, rendered):
    boxes, _, heads = rendered
    assert sorted(boxes.values()) == [pytest.approx(b) for b in sorted(drawn.boxes.values())]
    assert sorted(heads) == sorted(a.segments()[-1] for a in drawn.arrows)
