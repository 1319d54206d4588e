"""The pure helpers notebooks draw with: timelines from runtime records, import costs, exercise making."""

from types import SimpleNamespace

import nbformat
import pytest

from workshop import exercises, importcost, timeline


def record(env_id, function, spawned, init_end, calls, stopped=None):
    return SimpleNamespace(id=env_id, function=function, spawned_at=spawned, init_end_at=init_end,
                           invocations=[(f"r{i}", s, e, (e - s) * 1000) for i, (s, e) in enumerate(calls)],
                           stopped_at=stopped, stop_reason=None)


class TestTimelineRows:
    def test_environments_are_numbered_per_function_in_spawn_order_from_time_zero(self):
        records = [
            record("b", "Ping", 10.5, 10.6, [(10.6, 10.61)]),
            record("a", "Ping", 10.0, 10.2, [(10.2, 10.21), (11.0, 11.01)]),
            record("c", "Other", 10.1, 10.3, []),
        ]
        rows = timeline.rows(records, ["Ping"])
        assert [(r.label, r.environment_id) for r in rows] == [("Ping #1", "a"), ("Ping #2", "b")]
        first = rows[0]
        assert first.init == pytest.approx((0.0, 0.2))
        assert [start for start, _ in first.invocations] == pytest.approx([0.2, 1.0])

    def test_an_environment_stopped_before_the_window_is_left_out_but_keeps_numbering(self):
        records = [record("a", "Ping", 0.0, 0.1, [], stopped=1.0), record("b", "Ping", 2.0, 2.1, [])]
        assert [r.label for r in timeline.rows(records, since=1.5)] == ["Ping #2"]


class TestImportCost:
    def test_parse_reads_depth_self_and_cumulative_times(self):
        stderr = (
            "import time: self [us] | cumulative | imported package\n"
            "import time:       300 |        300 |     botocore.compat\n"
            "import time:       100 |        400 |   boto3\n"
        )
        costs = importcost.parse(stderr)
        assert [(c.module, c.self_us, c.cumulative_us, c.depth) for c in costs] == [
            ("botocore.compat", 300, 300, 2), ("boto3", 100, 400, 1)]
        assert importcost.total_ms(costs, "boto3") == 0.4
        assert importcost.by_package(costs, {"AWS SDK": ("boto3", "botocore")}) == {"AWS SDK": 0.4}


class TestExercises:
    def test_solution_blocks_become_ellipses_at_their_indentation_and_outputs_go(self):
        source = "x = None\nif True:\n    # BEGIN SOLUTION\n    x = 42\n    # END SOLUTION\nprint(x)"
        assert exercises.unsolve(source) == "x = None\nif True:\n    ...\nprint(x)"
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source, outputs=[
            nbformat.v4.new_output("stream", text="42\n")], execution_count=3)])
        [cell] = exercises.exercise_of(notebook).cells
        assert (cell.outputs, cell.execution_count) == ([], None) and "42" not in cell.source
