"""Execution-environment timelines: the local Lambda runtime's records drawn as the talk's lifecycle diagrams.

Each execution environment is a row; its INIT phase (process start to the handler's module imported)
and each invocation (event delivered to answer received) are bars on a common time axis::

    from workshop import timeline
    timeline.draw(cloud.runtime.records(), functions=["PingFunction"])   # a matplotlib Figure

:func:`rows` turns the records into plain numbers (for tables and tests), :func:`draw` draws them.
Both are pure: they read the records they are given and keep nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

INIT_COLOUR = "#f28e2b"  # orange: the INIT phase (the slides' init())
INVOKE_COLOUR = "#4e79a7"  # blue: an invocation (the slides' main(), the handler)
LIFE_COLOUR = "#bab0ac"  # grey: the environment alive and idle


@dataclass(frozen=True)
class Row:
    """One execution environment on the time axis (seconds from the timeline's zero).

    ``label`` is ``"<function> #<n>"``, n counting that function's environments in spawn order.
    """

    label: str
    environment_id: str
    function: str
    init: tuple[float, float] | None  # (start, end) of the INIT phase
    invocations: tuple[tuple[float, float], ...]  # (start, end) of each invocation
    end: float  # when it stopped, or its last activity if it still runs
    stop_reason: str | None


def rows(records: Iterable[Any], functions: Sequence[str] | None = None, since: float | None = None) -> list[Row]:
    """The records as rows, in spawn order, times in seconds from ``since``.

    Parameters:
        records: ``EnvironmentRecord``s (``LambdaRuntime.records()``), or objects with the same fields.
        functions: keep only these functions' environments (all when None).
        since: the time zero, a ``time.monotonic()`` value (e.g. taken just before a burst of calls);
            environments that stopped before it are left out. Default: the first selected spawn.

    Environments that never started (no ``spawned_at``) are left out.

    >>> rows(cloud.runtime.records(), ["PingFunction"])[0].label
    'PingFunction #1'
    """
    started = sorted((r for r in records if r.spawned_at is not None and (functions is None or r.function in functions)),
                     key=lambda r: r.spawned_at)
    # numbered before filtering by `since`, so that a label names the same environment in every view
    counts: dict[str, int] = {}
    numbered = []
    for r in started:
        counts[r.function] = counts.get(r.function, 0) + 1
        numbered.append((f"{r.function} #{counts[r.function]}", r))
    chosen = [(label, r) for label, r in numbered if since is None or r.stopped_at is None or r.stopped_at >= since]
    if not chosen:
        return []
    zero = min(r.spawned_at for _, r in chosen) if since is None else since
    out = []
    for label, r in chosen:
        init = (r.spawned_at - zero, r.init_end_at - zero) if r.init_end_at is not None else None
        calls = tuple((start - zero, end - zero) for _, start, end, _ in r.invocations)
        last = max([r.spawned_at, r.init_end_at or r.spawned_at, *(end for _, _, end, _ in r.invocations)])
        end = (r.stopped_at if r.stopped_at is not None else last) - zero
        out.append(Row(label, r.id, r.function, init, calls, end, r.stop_reason))
    return out


def environment_labels(records: Iterable[Any], functions: Sequence[str] | None = None) -> dict[str, str]:
    """Environment id -> its row label (``"PingFunction #2"``): short, stable names for tables."""
    return {row.environment_id: row.label for row in rows(records, functions)}


def draw(
    records: Iterable[Any],
    functions: Sequence[str] | None = None,
    *,
    since: float | None = None,
    title: str | None = None,
    min_bar_fraction: float = 0.004,
    ax: Any = None,
) -> Any:
    """A matplotlib Figure: a row per execution environment, its INIT bar, then a bar per invocation.

    Parameters:
        records, functions, since: as for :func:`rows`.
        title: the axes' title.
        min_bar_fraction: the narrowest bar drawn, as a fraction of the time span, so that a 2 ms
            invocation on a 3 s axis stays visible (its true length is in the records).
        ax: draw into these axes instead of a new Figure (returns that axes' figure).

    Returns the figure, which Jupyter shows when it is a cell's last value. With no environment to
    show, the axes say so.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    data = rows(records, functions, since)
    if ax is None:
        # made through pyplot so that Jupyter's inline backend is loaded and shows the returned figure,
        # then closed so that pyplot forgets it (it is shown once, as the cell's value)
        figure = plt.figure(figsize=(9, 0.45 * max(len(data), 2) + 1.2), layout="constrained")
        plt.close(figure)
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    if not data:
        ax.text(0.5, 0.5, "no execution environment yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return figure
    span = max(max(row.end for row in data), 1e-3)
    narrowest = span * min_bar_fraction
    for y, row in enumerate(data):
        start = row.init[0] if row.init else (row.invocations[0][0] if row.invocations else row.end)
        ax.broken_barh([(start, max(row.end - start, narrowest))], (y - 0.08, 0.16), color=LIFE_COLOUR)
        if row.init:
            ax.broken_barh([(row.init[0], max(row.init[1] - row.init[0], narrowest))], (y - 0.35, 0.7),
                           color=INIT_COLOUR)
        if row.invocations:
            ax.broken_barh([(s, max(e - s, narrowest)) for s, e in row.invocations], (y - 0.35, 0.7),
                           color=INVOKE_COLOUR, edgecolor="white", linewidth=0.5)
    ax.set_yticks(range(len(data)), [row.label for row in data])
    ax.set_ylim(len(data) - 0.5, -0.5)  # first environment on top, as in the slides
    ax.set_xlim(left=min(0.0, min(r.init[0] if r.init else 0.0 for r in data)))
    ax.set_xlabel("seconds")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color=INIT_COLOUR, label="init (cold start)"),
                       Patch(color=INVOKE_COLOUR, label="invocation (handler)"),
                       Patch(color=LIFE_COLOUR, label="environment kept, idle")],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    if title:
        ax.set_title(title)
    return figure
