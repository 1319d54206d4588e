"""What importing a module costs, per package: ``python -X importtime`` in a fresh process, parsed.

A Lambda function's cold start imports its handler's module and everything that module imports;
this measures the same import in a new interpreter, the way an execution environment does it::

    from workshop import importcost
    costs = importcost.measure("thumbnailr.handlers.get_photo", pythonpath="sam-app/src")
    importcost.by_package(costs)      # {"aws_lambda_powertools": 41.2, "botocore": 95.0, ...} in ms

Bytecode: the subprocess inherits ``PYTHONDONTWRITEBYTECODE``, so modules without a ``.pyc``
(the app's own source, when nothing wrote one) are compiled on every run, as in an execution
environment; pass ``bytecode=False`` to compile everything from source (an empty pycache prefix).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


_MARKER = "-- the measured import starts here --"


@dataclass(frozen=True)
class ImportCost:
    """One line of ``-X importtime``: a module, its own time and its time with what it imported (µs)."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int  # 0 for what the measured import pulled in directly, 1 for what those pulled in...


def parse(stderr: str) -> list[ImportCost]:
    """The ``import time:`` lines of a ``python -X importtime`` run (the header line is skipped).

    >>> parse("import time: self [us] | cumulative | imported package\\n"
    ...       "import time:       120 |        120 |   json.decoder\\n")
    [ImportCost(module='json.decoder', self_us=120, cumulative_us=120, depth=1)]
    """
    costs = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        name = fields[2].rstrip()
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        costs.append(ImportCost(stripped, int(fields[0]), int(fields[1]), depth))
    return costs


def measure(module: str, pythonpath: str | os.PathLike[str] | None = None, *, bytecode: bool = True,
            python: str = sys.executable, timeout: float = 120) -> list[ImportCost]:
    """Import ``module`` in a new ``python -X importtime`` process and return every import it made.

    Only that import statement's modules are returned, not the interpreter's start-up ones.

    Parameters:
        module: the dotted name to import, e.g. ``"thumbnailr.handlers.ping"``.
        pythonpath: a folder put first on ``PYTHONPATH`` (a function's code folder).
        bytecode: False compiles every module from source, as when no ``.pyc`` exists anywhere.
        python: the interpreter (by default this one, whose site-packages the functions use here).

    Raises ``RuntimeError`` with the child's stderr if the import fails.
    """
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(pythonpath).resolve()), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as empty:
        args = [python, "-X", "importtime"]
        if not bytecode:
            args += ["-X", f"pycache_prefix={empty}"]
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep the prefix empty: every import compiles
        # the marker separates the interpreter's own start-up imports (site, encodings...) from ours
        code = f"import sys; print({_MARKER!r}, file=sys.stderr, flush=True); import {module}"
        done = subprocess.run([*args, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{done.stderr[-2000:]}")
    return parse(done.stderr.partition(_MARKER)[2])


def total_ms(costs: list[ImportCost], module: str) -> float:
    """The cumulative time of ``module``'s own import line, in ms (0.0 if it was not imported)."""
    return next((c.cumulative_us / 1000 for c in costs if c.module == module), 0.0)


def by_package(costs: list[ImportCost], groups: dict[str, tuple[str, ...]] | None = None) -> dict[str, float]:
    """Self times summed per top-level package (or per named group of packages), in ms, largest first.

    ``groups`` maps a name to the top-level packages it covers, e.g.
    ``{"boto3 + botocore": ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3")}``;
    packages in no group keep their own name. The sum over all packages is the import's total time.
    """
    owner = {package: name for name, packages in (groups or {}).items() for package in packages}
    totals: dict[str, float] = {}
    for cost in costs:
        top = cost.module.split(".")[0]
        key = owner.get(top, top)
        totals[key] = totals.get(key, 0.0) + cost.self_us / 1000
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
