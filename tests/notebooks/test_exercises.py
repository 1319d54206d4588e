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


# Answers that did not do the work: each replaces one solution block, and its exercise's check must fail
# with "Not yet" (the check verifies the effect in the cloud, not a variable the learner typed).
LAZY_ANSWERS = {
    "05-1 the API made it, and the worker got the sample event": ("05_run_locally", 0, '''
status, body = ada.thumbnail(photo_id, 128, 128, "PNG")
thumbnail_id = body["thumbnail_id"]
ada.wait(f"thumbnails/{thumbnail_id}")
result = cloud.invoke("CreateThumbnailFunction", json.loads((app / "events" / "create_thumbnail_stream.json").read_text()))
'''),
    "05-2 Invoke's own REPORT line, not the log group's": ("05_run_locally", 1, '''
result = cloud.invoke("CreateThumbnailFunction", json.loads((app / "events" / "create_thumbnail_sns.json").read_text()))
request_id, max_memory_mb = result.request_id, int(result.report.max_memory_used_mb)
'''),
    "06-2 remaining = 0 with no debugger": ("06_debug_locally", 1, '''
remaining = 0
result = cloud.local.invoke("PingFunction", event)
'''),
    "08-1 latencies written, not measured": ("08_performance", 0, '''
predicted_p99_ms = 15
latencies_ms = [2.0] * 150
measured_p99_ms = statistics.quantiles(latencies_ms, n=100)[98]
'''),
}


def _with_lazy_answer(notebook: nbformat.NotebookNode, block: int, answer: str) -> nbformat.NotebookNode:
    """The notebook's setup cells and the cells of the exercise holding solution block ``block`` (its
    markdown heading up to its check), with that block replaced by ``answer``."""
    headings = [i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown" and c.source.startswith("## ")]
    solved = [i for i, c in enumerate(notebook.cells) if "# BEGIN SOLUTION" in c.source]
    at = solved[block]
    start = max(h for h in headings if h < at)
    check = next(i for i in range(at, len(notebook.cells)) if "check" in notebook.cells[i].metadata.get("tags", []))
    cells = notebook.cells[:headings[0]] + notebook.cells[start:check + 1]
    replaced = nbformat.from_dict(dict(notebook.cells[at]))
    replaced.source = exercises._SOLUTION.sub(
        lambda m: "".join(m.group(1) + line + "\n" for line in answer.strip("\n").splitlines()), replaced.source)
    assert replaced.source != notebook.cells[at].source
    cells[cells.index(notebook.cells[at])] = replaced
    return nbformat.v4.new_notebook(cells=cells, metadata=notebook.metadata)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", LAZY_ANSWERS)
def test_a_lazy_answer_fails_the_check(name):
    stem, block, answer = LAZY_ANSWERS[name]
    notebook = _with_lazy_answer(nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4), block, answer)
    NotebookClient(notebook, timeout=180, allow_errors=True, resources={"metadata": {"path": str(ROOT / "solutions")}}).execute()
    for cell in notebook.cells[:-1]:  # the setup and the lazy answer run
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{cell.source[:200]}\n{errors[0].ename}: {errors[0].evalue}"
    errors = [o for o in notebook.cells[-1].outputs if o.output_type == "error"]
    assert errors, f"the check passed a lazy answer ({name})"
    assert errors[0].ename == "ExerciseNotDone" and "Not yet:" in errors[0].evalue, errors[0].evalue
