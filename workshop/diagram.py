"""The app's architecture drawn from sam-app/template.yaml: who calls which function, and what each one uses."""

from __future__ import annotations

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


def draw(template_path: Path | None = None, ax=None):
    """Draw the architecture with matplotlib, on ``ax`` or (by default) on a new figure, shown at once."""
    import matplotlib.pyplot as plt

    from localcloud import read_template

    wires = wiring(read_template(template_path or config.template_path()))
    functions = sorted(wires["uses"], key=lambda f: (f not in wires["routes"], f))
    stores = sorted({r for used in wires["uses"].values() for r in used} | {r for t in wires["triggers"].values() for r in t},
                    key=lambda r: (wires["types"][r], r))
    show = ax is None
    if show:
        _, ax = plt.subplots(figsize=(13, 0.72 * max(len(functions), len(stores)) + 1.2))
    rows = max(len(functions), len(stores))
    y_of = lambda i, n: rows - 1 - i * (rows - 1) / max(n - 1, 1)  # spread a column over the height
    where: dict[str, tuple[float, float]] = {}

    def box(name: str, x: float, y: float, colour: str, label: str | None = None) -> None:
        where[name] = (x, y)
        ax.text(x, y, label or name, ha="center", va="center", fontsize=8.5, color="white",
                bbox={"boxstyle": "round,pad=0.45", "fc": colour, "ec": "none"})

    def arrow(start: tuple[float, float], end: tuple[float, float], colour: str = "#999999", dashed: bool = False) -> None:
        # from the right edge of the box on the left to the left edge of the box on the right
        (x0, y0), (x1, y1) = sorted([start, end])
        tail, head = ((x0 + 1.15, y0), (x1 - 0.85, y1)) if start[0] < end[0] else ((x1 - 0.85, y1), (x0 + 1.15, y0))
        ax.annotate("", xy=head, xytext=tail, arrowprops={
            "arrowstyle": "-|>", "color": colour, "lw": 1.0, "shrinkA": 0, "shrinkB": 0,
            "linestyle": "--" if dashed else "-", "connectionstyle": "arc3,rad=0.0"})

    box("client", 0, rows / 2 - 0.5, _COLOURS["client"], "client\n(HTTP)")
    box("api", 2.2, rows / 2 - 0.5, _COLOURS["api"], "API Gateway\n+ Cognito authorizer")
    for i, function in enumerate(functions):
        route = wires["routes"].get(function)
        label = function.replace("Function", "") + (f"\n{route}" if route else "")
        box(function, 5.0, y_of(i, len(functions)), _COLOURS["AWS::Serverless::Function"], label)
    for i, store in enumerate(stores):
        box(store, 8.6, y_of(i, len(stores)), _COLOURS.get(wires["types"][store], "#777777"),
            f"{store}\n{wires['types'][store].split('::')[1]}")
    arrow(where["client"], where["api"])
    for function in functions:
        if function in wires["routes"]:
            arrow(where["api"], where[function], _COLOURS["api"])
        for used in wires["uses"][function]:
            arrow(where[function], where[used])
        for source in wires["triggers"].get(function, []):  # events flow from the store to the function
            arrow(where[source], where[function], _COLOURS[wires["types"][source]] if wires["types"][source] in _COLOURS else "#cc2264", dashed=True)
    ax.set_xlim(-1, 9.8)
    ax.set_ylim(-0.8, rows - 0.2)
    ax.axis("off")
    ax.set_title("Thumbnailr, as sam-app/template.yaml wires it: solid = calls, dashed = events that trigger a function",
                 fontsize=10)
    if show:
        plt.show()


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
