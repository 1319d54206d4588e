"""Probes of exercise checks: an answer that did not do the work must fail the check, the solution must pass it.

Each probe replaces the solution block of an exercise cell with a lazy answer (counts typed in with no burst,
the calls of an earlier step, a hard-coded answer...), runs it and the check cell after it in one kernel, and
expects ``ExerciseNotDone``. The solution itself runs last in the same kernel, so a probe cannot pass
because the set-up broke.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^([ \t]*)# BEGIN SOLUTION\n.*?^[ \t]*# END SOLUTION\n?", re.M | re.S)

# stem -> (a line of the exercise cell, {probe: lazy answer in place of the solution block})
PROBES = {
    "02_lambda_lifecycle": ("predicted_cold_starts = None", {
        "counts typed in, no burst": "predicted_cold_starts = 3\nmeasured_cold_starts = 3\n",
        "the warm-up's calls as the results": "predicted_cold_starts = 3\nresults = warm + warm[:1] * 3\n"
                                              "measured_cold_starts = 3\n",
        "five calls in a row, count typed in": "predicted_cold_starts = 3\n"
                                               "results = [cloud.invoke(nap, {'sleep': 0.5}) for _ in range(5)]\n"
                                               "measured_cold_starts = 3\n",
    }),
    "03_code_and_infra": ("fixed = None", {
        "the module unchanged": "fixed = PHOTO_FACTS\n",
        "json.dumps(default=str) turns numbers into strings": (
            "fixed = PHOTO_FACTS.replace('    return {', '    import json\\n    return json.loads(json.dumps({')"
            ".replace('set(event[\"formats\"])}', 'set(event[\"formats\"])}, default=str))')\n"),
        "the example's answer typed in": (
            "fixed = 'def handler(event, context):\\n    return {\"taken_at\": \"2019-10-02T07:06:40+00:00\", "
            "\"megapixels\": 0.3072, \"formats\": [\"JPEG\", \"PNG\"]}\\n'\n"),
    }),
}


def _with_answer(cell: nbformat.NotebookNode, answer: str) -> nbformat.NotebookNode:
    probe = copy.deepcopy(cell)
    probe.source = _BLOCK.sub(lambda m: "".join(m.group(1) + line + "\n" for line in answer.splitlines()), cell.source)
    assert probe.source != cell.source, "the exercise cell has no solution block"
    return probe


def _errors(cell: nbformat.NotebookNode) -> list:
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


@pytest.mark.timeout(420)
@pytest.mark.parametrize("stem", sorted(PROBES))
def test_a_lazy_answer_fails_the_check_and_the_solution_passes_it(stem):
    marker, answers = PROBES[stem]
    notebook = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    exercise = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and marker in c.source)
    check = next(i for i in range(exercise + 1, len(notebook.cells)) if "check" in notebook.cells[i].metadata.get("tags", []))
    # nbclient may store an executed cell back into the notebook at its index: keep the originals aside
    exercise_cell, check_cell = copy.deepcopy(notebook.cells[exercise]), copy.deepcopy(notebook.cells[check])
    client = NotebookClient(notebook, timeout=180, allow_errors=True,
                            resources={"metadata": {"path": str(ROOT / "solutions")}})
    with client.setup_kernel():
        for index in range(exercise):  # GIVEN the set-up cells, run as a learner runs them
            cell = notebook.cells[index]
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
                assert not _errors(cell), f"set-up cell {index} failed: {_errors(cell)[0].evalue}"
        passed = []
        for name, answer in answers.items():  # WHEN a lazy answer runs, THEN its check says "Not yet"
            lazy, judged = _with_answer(exercise_cell, answer), copy.deepcopy(check_cell)
            client.execute_cell(lazy, exercise)
            client.execute_cell(judged, check)
            errors = _errors(judged)
            if not (errors and errors[0].ename == "ExerciseNotDone"):
                passed.append((name, errors[0].ename if errors else "no error"))
        solved, judged = copy.deepcopy(exercise_cell), copy.deepcopy(check_cell)
        client.execute_cell(solved, exercise)
        client.execute_cell(judged, check)
    assert not passed, f"lazy answers the check let through (or that broke it otherwise): {passed}"
    assert not _errors(solved) and not _errors(judged), f"the solution fails its own check: {_errors(judged) or _errors(solved)}"
