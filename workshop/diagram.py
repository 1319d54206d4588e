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
