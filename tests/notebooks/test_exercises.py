"""Both sides of every exercise: the unsolved notebook's checks fail with a clear message.

That the solutions pass is shown by nbval, which runs solutions/ in `make test`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workshop import exercises

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_there_are_exercises_for_every_notebook_that_has_them():
    notebooks = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert {p.name for p in SOLUTIONS} <= notebooks
    assert len(SOLUTIONS) >= 1


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_the_exercise_notebook_is_its_solution_without_the_answers(solution):
    made = exercises.build(ROOT, write=False)[ROOT / "exercises" / solution.name]
    assert (ROOT / "exercises" / solution.name).read_text() == made, "run `python -m workshop.exercises`"
    notebook = nbformat.reads(made, as_version=4)
    checks = [c for c in notebook.cells if "check" in c.metadata.get("tags", [])]
    assert len(checks) >= 2, "each notebook has at least two exercises, each with a check cell"
    assert "# BEGIN SOLUTION" in solution.read_text()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_check_of_the_unsolved_exercise_fails_with_not_yet(solution, tmp_path):
    notebook = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    NotebookClient(notebook, timeout=120, allow_errors=True, resources={"metadata": {"path": str(ROOT / "exercises")}}).execute()
    for cell in notebook.cells:
        if "check" in cell.metadata.get("tags", []):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert errors, f"a check passed on the unsolved exercise:\n{cell.source}"
            assert errors[0].ename == "ExerciseNotDone" and "Not yet:" in errors[0].evalue, errors[0].evalue
