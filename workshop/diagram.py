"""The app's architecture drawn from sam-app/template.yaml: who calls which function, and what each one uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workshop import config

_COLOURS = {
    "AWS::Serverless::Function": "#f58536",
    "AWS::DynamoDB::Table": "#3b48cc",
    "AWS::S3::Bucket": "#3f8624",
    "AWS::SNS::Topic": "#cc2264",
    "AWS::SQS::Queue": "#cc2264",
    "api": "#8c4fff",
    "client": "#555555",
}


def wiring(template: dict) -> dict[str, Any]:
    """Functions with their routes and triggers, and the resources each one is given."""
    from localcloud import refs_in

    resources = template["Resources"]

    def named(*values: Any) -> set[str]:
        """The resources the values may refer to, whichever way their Fn::Ifs go."""
        return {ref for value in values for ref in refs_in(value) if ref in resources}

    functions = {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    wires: dict[str, Any] = {"routes": {}, "triggers": {}, "uses": {}, "types": {}}
    for lid, props in functions.items():
        wires["uses"][lid] = sorted(named(props.get("Environment", {}).get("Variables", {}), props.get("DeadLetterQueue", {})))
        for event in props.get("Events", {}).values():
            if event["Type"] == "Api":
                wires["routes"][lid] = f"{event['Properties']['Method']} {event['Properties']['Path']}"
            elif event["Type"] == "S3":
                wires["triggers"][lid] = sorted(named(event["Properties"]["Bucket"]))
    for resource in resources.values():  # triggers declared as plain resources (SNS subscription, stream mapping)
        props = resource.get("Properties", {})
        source = named(props.get("TopicArn"), props.get("EventSourceArn"))
        for function in named(props.get("Endpoint"), props.get("FunctionName")) & set(functions):
            wires["triggers"][function] = sorted(set(wires["triggers"].get(function, [])) | source)
    wires["types"] = {lid: r["Type"] for lid, r in resources.items()}
    return wires


# ------------------------------------------------------------------ the architecture, laid out by flow
# Places are planned by hand, one lane per flow (upload, thumbnail, reads); the boxes and arrows themselves
# come from wiring(), so a function or a use added to the template shows up here, or fails the test until it
# has a place. tests/unit/test_diagram.py proves no two arrows cross and every arrow ends on a box edge.

_BOX_W, _BOX_H = 2.5, 0.95

# name -> centre; client and API Gateway are tall boxes spanning the lanes they serve
_PLACES = {
    "PhotosBucket": (7.2, 12.6), "PhotoUploadedFunction": (11.9, 12.6),
    "CreateUploadFunction": (7.2, 11.0), "PhotosTable": (11.9, 11.0),
    "GetPhotoFunction": (7.2, 9.4),
    "RequestThumbnailFunction": (7.2, 7.4), "CommandsTopic": (11.9, 7.4), "CreateThumbnailFunction": (16.6, 7.4),
    "DeadLetterQueue": (21.3, 7.4), "QuotaTable": (11.9, 5.6), "IdempotencyTable": (21.3, 5.6),
    "PingFunction": (7.2, 4.6), "ThumbnailsTable": (11.9, 3.9),
    "GetThumbnailFunction": (7.2, 2.4), "ThumbnailsBucket": (16.6, 2.4),
}
# functions drawn as a box with what they do, their arrows left out: they touch every table of the app, and
# their lines would cross every lane (the settle function: on failure, and every 5 minutes)
_SUMMARISED = {"SettleFunction": "Settle\non failure, every 5 min"}
_PLACES["SettleFunction"] = (21.3, 2.4)
_TALL = {"client": (-0.9, 0.7, 0.3, 13.2), "api": (1.9, 3.7, 1.9, 11.6)}  # x0, x1, y0, y1

# arrows that would cross a straight line go round: waypoints between the two boxes
_ROUTES = {
    ("CreateThumbnailFunction", "PhotosBucket"): [(16.6, 13.6), (7.2, 13.6)],  # over the upload lane
    ("client", "ThumbnailsBucket"): [(16.6, 0.9)],  # under the API
}
# numbered steps and the few words an arrow needs
_LABELS = {
    ("api", "CreateUploadFunction"): "1 POST\n/photos", ("CreateUploadFunction", "PhotosBucket"): "signs a POST",
    ("client", "PhotosBucket"): "2 POST the file with the\npresigned form, straight to S3",
    ("PhotosBucket", "PhotoUploadedFunction"): "3 S3 event",
    ("PhotoUploadedFunction", "PhotosTable"): "marks uploaded",
    ("api", "GetPhotoFunction"): "GET\n/photos/{id}",
    ("api", "RequestThumbnailFunction"): "4 POST\n/thumbnails",
    ("RequestThumbnailFunction", "CommandsTopic"): "publish",
    ("CommandsTopic", "CreateThumbnailFunction"): "5 SNS push\n(Dispatch=sns)",
    ("ThumbnailsTable", "CreateThumbnailFunction"): "5 stream\n(Dispatch=stream)",
    ("CreateThumbnailFunction", "DeadLetterQueue"): "failed events",
    ("CreateThumbnailFunction", "PhotosBucket"): "reads the original",
    ("CreateThumbnailFunction", "ThumbnailsBucket"): "writes",
    ("api", "PingFunction"): "GET\n/ping",
    ("api", "GetThumbnailFunction"): "6 GET\n/thumbnails/{id}", ("GetThumbnailFunction", "ThumbnailsBucket"): "signs a GET",
    ("client", "ThumbnailsBucket"): "7 GET the thumbnail with the presigned URL, straight from S3",
    ("client", "api"): "HTTPS\n+ Cognito\ntoken",
}
# labels a diagonal pair of arrows would cover go beside them (x, y of the label's left middle)
_LABEL_AT = {("ThumbnailsTable", "CreateThumbnailFunction"): (13.4, 4.3)}
_STREAM_GAP = 0.18  # the stream (dashed) runs beside the function's own calls to the same table


@dataclass(frozen=True)
class Arrow:
    start: str
    end: str
    points: tuple[tuple[float, float], ...]  # from the start box's edge to the end box's edge
    dashed: bool = False
    label: str = ""

    def segments(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        return list(zip(self.points, self.points[1:]))


@dataclass
class Layout:
    boxes: dict[str, tuple[float, float, float, float]]  # name -> x0, y0, x1, y1
    labels: dict[str, str]
    colours: dict[str, str]
    arrows: list[Arrow]


def _exit(box: tuple[float, float, float, float], inside: tuple[float, float], towards: tuple[float, float]):
    """Where the segment from a point inside the box towards a point outside crosses the box's edge."""
    x0, y0, x1, y1 = box
    (px, py), (qx, qy) = inside, towards
    t = 1.0
    for p, q, low, high in ((px, qx, x0, x1), (py, qy, y0, y1)):
        if q > high:
            t = min(t, (high - p) / (q - p))
        elif q < low:
            t = min(t, (low - p) / (q - p))
    return (round(px + t * (qx - px), 6), round(py + t * (qy - py), 6))


def layout(template_path: Path | None = None) -> Layout:
    """The boxes and arrows of the architecture, in data coordinates, as draw() renders them."""
    from localcloud import read_template

    wires = wiring(read_template(template_path or config.template_path()))
    used = {r for uses in wires["uses"].values() for r in uses} | {r for t in wires["triggers"].values() for r in t}
    unplaced = sorted((set(wires["uses"]) | used) - set(_PLACES))
    if unplaced:
        raise ValueError(f"the diagram has no place for {', '.join(unplaced)}: add it to diagram._PLACES")
    boxes = {name: (x - _BOX_W / 2, y - _BOX_H / 2, x + _BOX_W / 2, y + _BOX_H / 2)
             for name, (x, y) in _PLACES.items() if name in used or name in wires["uses"]}
    boxes |= {name: (x0, y0, x1, y1) for name, (x0, x1, y0, y1) in _TALL.items()}
    labels = {"client": "client\n(browser,\nnotebook)", "api": "API\nGateway\n+ Cognito\nauthorizer"}
    colours = {"client": _COLOURS["client"], "api": _COLOURS["api"]}
    for name in boxes.keys() - labels.keys():
        kind = wires["types"][name]
        labels[name] = _SUMMARISED.get(name) or (name.replace("Function", "") if kind == "AWS::Serverless::Function"
                                                 else f"{name}\n{kind.split('::')[1]}")
        colours[name] = _COLOURS.get(kind, "#777777")

    def centre(name: str) -> tuple[float, float]:
        x0, y0, x1, y1 = boxes[name]
        return (x0 + x1) / 2, (y0 + y1) / 2

    arrows: list[Arrow] = []

    def join(start: str, end: str, dashed: bool = False, offset: float = 0.0) -> None:
        (sx, sy), (ex, ey) = centre(start), centre(end)
        via = _ROUTES.get((start, end), [])
        if start in _TALL:  # a tall box meets a lane at the height of the lane (or of the route's first turn)
            sy = via[0][1] if via else ey
        if end in _TALL:
            ey = via[-1][1] if via else sy
        if offset:  # shift the whole line sideways, keeping it parallel
            length = ((ex - sx) ** 2 + (ey - sy) ** 2) ** 0.5
            dx, dy = -(ey - sy) / length * offset, (ex - sx) / length * offset
            sx, sy, ex, ey = sx + dx, sy + dy, ex + dx, ey + dy
        first, last = (via[0] if via else (ex, ey)), (via[-1] if via else (sx, sy))
        points = (_exit(boxes[start], (sx, sy), first), *via, _exit(boxes[end], (ex, ey), last))
        arrows.append(Arrow(start, end, points, dashed, _LABELS.get((start, end), "")))

    join("client", "api")
    join("client", "PhotosBucket")  # the presigned POST: the file never passes through a function
    join("client", "ThumbnailsBucket")  # the presigned GET
    for function in sorted(wires["uses"].keys() - _SUMMARISED.keys()):
        if function in wires["routes"]:
            join("api", function)
        for source in wires["triggers"].get(function, []):
            both = source in wires["uses"][function]  # a table it writes and whose stream triggers it
            join(source, function, dashed=True, offset=_STREAM_GAP if both else 0.0)
        for store in wires["uses"][function]:
            join(function, store, offset=_STREAM_GAP if store in wires["triggers"].get(function, []) else 0.0)
    return Layout(boxes, labels, colours, arrows)


def draw(template_path: Path | None = None, ax=None) -> None:
    """Draw the architecture with matplotlib, on ``ax`` or (by default) on a new figure, shown at once."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    drawn = layout(template_path)
    ax, show = _figure(ax, (13, 6.2))
    for name, (x0, y0, x1, y1) in drawn.boxes.items():
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.08",
                                    fc=drawn.colours[name], ec="none"))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, drawn.labels[name], ha="center", va="center", fontsize=8,
                color="white")
    for arrow in drawn.arrows:
        colour = "#444444" if arrow.start in ("client", "api") else ("#cc2264" if arrow.dashed else "#8a8a8a")
        style = "--" if arrow.dashed else "-"
        *lines, (tail, head) = arrow.segments()
        for (xa, ya), (xb, yb) in lines:
            ax.plot([xa, xb], [ya, yb], color=colour, lw=1.1, linestyle=style, solid_capstyle="butt")
        ax.annotate("", xy=head, xytext=tail, arrowprops={
            "arrowstyle": "-|>", "color": colour, "lw": 1.1, "shrinkA": 0, "shrinkB": 0, "linestyle": style})
        if arrow.label:
            _label(ax, arrow)
    ax.set_xlim(-1.0, 22.7)
    ax.set_ylim(0.2, 14.0)
    ax.axis("off")
    ax.set_title("Thumbnailr as sam-app/template.yaml wires it: solid = calls, dashed = events that trigger a "
                 "function; numbers follow one photo", fontsize=10)
    if show:
        plt.show()


def _label(ax, arrow: Arrow) -> None:
    """The label beside the longest segment's middle: above a horizontal one, right of a vertical one."""
    if (arrow.start, arrow.end) in _LABEL_AT:
        ax.text(*_LABEL_AT[(arrow.start, arrow.end)], arrow.label, ha="left", va="center", fontsize=7.5, color="#222222")
        return
    (xa, ya), (xb, yb) = max(arrow.segments(), key=lambda s: abs(s[1][0] - s[0][0]) + abs(s[1][1] - s[0][1]))
    mx, my = (xa + xb) / 2, (ya + yb) / 2
    if abs(ya - yb) < 1e-9:
        ax.text(mx, my + 0.12, arrow.label, ha="center", va="bottom", fontsize=7.5, color="#222222")
    else:
        ax.text(mx + 0.12, my, arrow.label, ha="left", va="center", fontsize=7.5, color="#222222")


# ------------------------------------------------------------------ flows explained in notebooks 06, 08 and 09
# Each is drawn on a grid of boxes joined by straight arrows between neighbours, so no arrow crosses another.

_FLOW = {"you": "#555555", "lambda": "#f58536", "api": "#8c4fff", "data": "#3b48cc", "queue": "#cc2264",
         "server": "#3f8624", "muted": "#9a9a9a"}


def _flow(ax, boxes: dict[str, tuple[float, float, str, str]], arrows: list[tuple[str, str, str]],
          width: float = 1.7) -> None:
    """``boxes``: name -> (x, y, label, colour key); ``arrows``: (from, to, label) between boxes on one row
    or one column. Arrows run edge to edge, their labels beside the middle."""
    from matplotlib.patches import FancyBboxPatch

    half_w, half_h = width / 2, 0.28
    for x, y, label, colour in boxes.values():
        ax.add_patch(FancyBboxPatch(
            (x - half_w, y - half_h), width, 2 * half_h, boxstyle="round,pad=0.04", fc=_FLOW[colour], ec="none"))
        ax.text(x, y, label, ha="center", va="center", fontsize=8.5, color="white")
    for start, end, label in arrows:
        (x0, y0), (x1, y1) = boxes[start][:2], boxes[end][:2]
        if y0 == y1:  # along a row
            sign = 1 if x1 > x0 else -1
            tail, head = (x0 + sign * half_w, y0), (x1 - sign * half_w, y1)
            text_at, align = ((x0 + x1) / 2, y0 + 0.36), "center"
        else:  # along a column
            sign = 1 if y1 > y0 else -1
            tail, head = (x0, y0 + sign * half_h), (x1, y1 - sign * half_h)
            text_at, align = (x0 + 0.12, (y0 + y1) / 2), "left"
        ax.annotate("", xy=head, xytext=tail, arrowprops={"arrowstyle": "-|>", "color": "#666666", "lw": 1.2,
                                                         "shrinkA": 2, "shrinkB": 2})
        if label:
            ax.text(*text_at, label, ha=align, va="center", fontsize=7.5, color="#333333")
    ax.axis("off")


def _figure(ax, size: tuple[float, float]):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax, False
    _, ax = plt.subplots(figsize=size)
    return ax, True


def debug_order(ax=None):
    """Notebook 06: the usual debug order (attach, then call) against Lambda's (call, then attach)."""
    import matplotlib.pyplot as plt

    ax, show = _figure(ax, (13, 3.2))
    gap = 2.15
    usual = ["1 build", "2 start the app\nunder the debugger", "3 attach the IDE", "4 make the call", "5 stop at the\nbreakpoint"]
    lam = ["1 build", "2 mark the function:\nnext call debugs", "3 make the call:\nenvironment starts", "4 debugpy waits;\nattach the IDE",
           "5 stop at the\nbreakpoint"]
    boxes, arrows = {}, []
    for row, (steps, y) in enumerate([(usual, 1.4), (lam, 0.0)]):
        for i, step in enumerate(steps):
            swapped = i in (2, 3)
            colour = ("you" if row == 0 else "lambda") if swapped else "muted"
            boxes[f"{row}{i}"] = (i * gap, y, step, colour)
            if i:
                arrows.append((f"{row}{i - 1}", f"{row}{i}", ""))
    _flow(ax, boxes, arrows, width=1.85)
    ax.text(-1.1, 1.4, "a web app", ha="right", va="center", fontsize=9, weight="bold")
    ax.text(-1.1, 0.0, "a Lambda\nfunction", ha="right", va="center", fontsize=9, weight="bold")
    ax.set_xlim(-2.4, 4 * gap + 1.1)
    ax.set_ylim(-0.55, 1.95)
    ax.set_title("Steps 3 and 4 swap: the environment, and the debugger in it, exist only once a call arrives",
                 fontsize=10)
    if show:
        plt.show()


def fronts(ax=None):
    """Notebook 08: the three fronts before the same handlers, and what each hands them."""
    import matplotlib.pyplot as plt

    ax, show = _figure(ax, (13, 4.0))
    rows = [("API Gateway + Lambda", "API Gateway\n+ Cognito authorizer", "api", "Lambda\n(an environment a call)",
             "lambda", "Invoke:\nproxy event"),
            ("ALB + Lambda", "Application\nLoad Balancer", "api", "Lambda\n(an environment a call)", "lambda",
             "Invoke:\ntarget-group event"),
            ("ALB + EC2", "Application\nLoad Balancer", "api", "server process\n(handlers in-process)", "server",
             "HTTP to the server,\nwhich calls the handler")]
    boxes, arrows = {}, []
    for i, (_, front, front_colour, compute, compute_colour, hands) in enumerate(rows):
        y = (len(rows) - 1 - i) * 1.3
        boxes[f"client{i}"] = (0, y, "client", "you")
        boxes[f"front{i}"] = (3.0, y, front, front_colour)
        boxes[f"compute{i}"] = (6.6, y, compute, compute_colour)
        boxes[f"data{i}"] = (9.8, y, "DynamoDB, S3", "data")
        arrows += [(f"client{i}", f"front{i}", "HTTPS"), (f"front{i}", f"compute{i}", hands),
                   (f"compute{i}", f"data{i}", "SDK calls")]
    _flow(ax, boxes, arrows, width=2.0)
    for i, (name, *_rest) in enumerate(rows):
        ax.text(-1.25, (len(rows) - 1 - i) * 1.3, name, ha="right", va="center", fontsize=9, weight="bold")
    ax.set_xlim(-3.6, 10.9)
    ax.set_ylim(-0.55, 3.25)
    ax.set_title("Three fronts, one code base: what sits between the client and the handler changes", fontsize=10)
    if show:
        plt.show()


def dispatch(ax=None):
    """Notebook 09: the create command by SNS (transport) against the table's stream (transform)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, axes = plt.subplots(1, 2, figsize=(14, 3.0))
        show = True
    else:
        axes, show = ax, False
    sns, stream = axes
    _flow(sns, {"request": (0, 1, "RequestThumbnail", "lambda"), "table": (0, 0, "thumbnails table\n(pending row)", "data"),
                "topic": (3.3, 1, "SNS topic", "queue"), "worker": (6.6, 1, "CreateThumbnail", "lambda")},
          [("request", "table", "put item"), ("request", "topic", "publish\n(+1 call, $0.50/M)"),
           ("topic", "worker", "push")], width=1.9)
    sns.set_title('Dispatch=sns: transport (the function writes, then sends)', fontsize=10)
    _flow(stream, {"request": (0, 1, "RequestThumbnail", "lambda"), "table": (3.3, 1, "thumbnails table\n(pending row)", "data"),
                   "worker": (6.6, 1, "CreateThumbnail", "lambda")},
          [("request", "table", "put item"), ("table", "worker", "stream INSERT\n(Lambda polls, free)")], width=1.9)
    stream.set_title("Dispatch=stream: transform (the write is the command)", fontsize=10)
    for axis in axes:
        axis.set_xlim(-1.1, 7.7)
        axis.set_ylim(-0.5, 1.7)
    if show:
        plt.tight_layout()
        plt.show()
