"""Exercise notebooks are made from their solutions, so the two can never drift apart.

In a solution notebook, the answer to a TODO sits between two marker lines::

    # TODO: refuse a second photo with the same id
    # BEGIN SOLUTION
    table.put_item(..., ConditionExpression="attribute_not_exists(photo_id)")
    # END SOLUTION

``python -m workshop.exercises`` writes ``exercises/NN_name.ipynb`` for each ``solutions/NN_name.ipynb``:
the same cells, without outputs, each marked block replaced by ``...``. Cells tagged ``check``
call ``lab.check(...)``, which fails with "Not yet: ..." until the TODO above it is done.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
_SOLUTION = re.compile(r"^([ \t]*)# BEGIN SOLUTION\n.*?^[ \t]*# END SOLUTION\n?", re.M | re.S)


def unsolve(source: str) -> str:
    """The exercise's version of a cell: each solution block becomes a bare ``...`` at its indentation."""
    return _SOLUTION.sub(lambda m: f"{m.group(1)}...\n", source).rstrip("\n")


def exercise_of(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(metadata=solution.metadata)
    for cell in solution.cells:
        copy = nbformat.from_dict(dict(cell))
        if copy.cell_type == "code":
            copy.source = unsolve(copy.source)
            copy.outputs, copy.execution_count = [], None
        notebook.cells.append(copy)
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def build(root: Path = ROOT, write: bool = True) -> dict[Path, str]:
    """Every exercise notebook's text, made from the solutions (and written, unless write=False)."""
    made = {}
    for solution_path in sorted((root / "solutions").glob("*.ipynb")):
        text = render(exercise_of(nbformat.read(solution_path, as_version=4)))
        target = root / "exercises" / solution_path.name
        made[target] = text
        if write:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
    return made


if __name__ == "__main__":
    for path in build():
        print(f"wrote {path.relative_to(ROOT)}")
    sys.exit(0)
