"""workshop.deploy: CodeDeploy's schedules, alias routing, canary counts, rollback on alarm, clean-up."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from workshop import deploy

REPO = Path(__file__).resolve().parents[2]
HANDLERS = Path(__file__).resolve().parent / "handlers"


class FakeCloud:
    """Just ``invoke``: versions named in ``broken`` fail as a function error does."""

    def __init__(self, broken: set[str] = frozenset()) -> None:
        self.broken = set(broken)
        self.calls: list[str] = []

    def invoke(self, name: str, event: object) -> SimpleNamespace:
        self.calls.append(name)
        return SimpleNamespace(function_error="Unhandled" if name in self.broken else None)


def test_schedules_of_the_predefined_configurations() -> None:
    assert deploy.traffic_schedule("Canary10Percent5Minutes") == [(0.0, 0.1), (5.0, 1.0)]
    linear = deploy.traffic_schedule("Linear10PercentEvery1Minute")
    assert len(linear) == 10 and linear[0] == (0.0, 0.1) and linear[-1] == (9.0, 1.0)
    assert deploy.traffic_schedule("AllAtOnce") == [(0.0, 1.0)]
    assert deploy.weight_at(linear, 3.5) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="unknown deployment preference"):
        deploy.traffic_schedule("Canary10PercentSoon")


def test_alias_weights_must_sum_to_one() -> None:
    with pytest.raises(ValueError):
        deploy.Alias("live", {"F:1": 0.5, "F:2": 0.4})
    assert repr(deploy.Alias("live", {"F:1": 0.9, "F:2": 0.1})) == "Alias(live: F:1 90%, F:2 10%)"


def test_canary_sends_about_ten_percent_then_everything() -> None:
    cloud, clock = FakeCloud(), deploy.ManualClock()
    live = deploy.Alias("live", {"F:1": 1.0})
    rollout = deploy.Deployment(cloud, live, "F:2", "Canary10Percent5Minutes", clock=clock, seed=7)
    calls = [rollout.invoke({}) for _ in range(1000)]
    new = sum(c.version == "F:2" for c in calls)
    assert 70 <= new <= 130  # 10 % of 1000, +- 3 sigma
    again = deploy.Deployment(FakeCloud(), deploy.Alias("live", {"F:1": 1.0}), "F:2", clock=deploy.ManualClock(), seed=7)
    assert sum(again.invoke({}).version == "F:2" for _ in range(1000)) == new  # seeded: repeatable
    clock.advance(5)
    assert rollout.invoke({}).phase == "Succeeded"
    assert live.weights == {"F:2": 1.0}
    assert {rollout.invoke({}).version for _ in range(50)} == {"F:2"}


def test_linear_shifts_ten_percent_more_each_minute() -> None:
    clock = deploy.ManualClock()
    rollout = deploy.Deployment(FakeCloud(), deploy.Alias("live", {"F:1": 1.0}), "F:2",
                                "Linear10PercentEvery1Minute", clock=clock, seed=1)
    clock.advance(3)
    share = sum(rollout.invoke({}).version == "F:2" for _ in range(2000)) / 2000
    assert 0.35 <= share <= 0.45
    clock.advance(6)
    assert rollout.update() == "Succeeded"


def test_alarm_on_the_new_versions_errors_rolls_back() -> None:
    cloud, clock = FakeCloud(broken={"F:2"}), deploy.ManualClock()
    live = deploy.Alias("live", {"F:1": 1.0})
    alarm = deploy.ErrorAlarm("F-errors", "F:2", threshold=1)
    rollout = deploy.Deployment(cloud, live, "F:2", "Canary10Percent5Minutes", [alarm], clock=clock, seed=3)
    calls = []
    while rollout.status == "InProgress" and len(calls) < 500:
        calls.append(rollout.invoke({}))
        clock.advance(0.01)
    assert rollout.status == "RolledBack"
    assert alarm.state == "ALARM" and alarm.fired_at is not None and alarm.fired_at < 5
    assert live.weights == {"F:1": 1.0}
    assert sum(c.failed for c in calls) == 1  # the first error fires the alarm before the next call
    assert {rollout.invoke({}).version for _ in range(50)} == {"F:1"}
    assert "ALARM" in rollout.history[-1][1]


def test_errors_of_the_old_version_do_not_fire_the_alarm() -> None:
    clock = deploy.ManualClock()
    alarm = deploy.ErrorAlarm("F-errors", "F:2")
    rollout = deploy.Deployment(FakeCloud(broken={"F:1"}), deploy.Alias("live", {"F:1": 1.0}), "F:2",
                                alarms=[alarm], clock=clock, seed=3)
    for _ in range(100):
        rollout.invoke({})
    clock.advance(5)
    assert rollout.update() == "Succeeded" and alarm.state == "OK"


def test_artifact_uris_and_outputs_table() -> None:
    text = "Resources:\n  F:\n    Properties:\n      CodeUri: s3://bucket/abc\n  G:\n    Properties:\n      CodeUri: s3://bucket/abc\n"
    assert deploy.artifact_uris(text) == ["s3://bucket/abc"]
    table = deploy.outputs_table({"ApiUrl": "http://x/"}, descriptions={"ApiUrl": "the API"})
    assert "Key                 ApiUrl" in table and "Value               http://x/" in table


def test_deploy_packaged_versions_rollback_and_clean_up(tmp_path: Path, no_real_aws: list[str]) -> None:
    """A packaged template deploys from S3; a broken version rolls back; delete_stack leaves nothing."""
    from localcloud.cloud import LocalCloud

    with LocalCloud(REPO / "sam-app" / "template.yaml", port=0, control=False) as artifacts:
        s3 = artifacts.client("s3")
        s3.create_bucket(Bucket="artifacts")
        archive = tmp_path / "code.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for path in (REPO / "sam-app" / "src").rglob("*.py"):
                z.write(path, path.relative_to(REPO / "sam-app" / "src"))
        s3.upload_file(str(archive), "artifacts", "abc123")
        packaged = tmp_path / "packaged.yaml"
        text = (REPO / "sam-app" / "template.yaml").read_text()
        packaged.write_text(text.replace("    CodeUri: src/", "    CodeUri: s3://artifacts/abc123"))
        cloud, _ = deploy.deploy_packaged(packaged, s3, tmp_path / "deployed")
    try:
        assert cloud.invoke("PingFunction", {}).json()["statusCode"] == 200
        assert str(cloud.code_dirs["PingFunction"][0]).startswith(str(tmp_path / "deployed"))
        v1 = deploy.publish_version(cloud, "PingFunction")
        broken = tmp_path / "broken"
        shutil.copytree(HANDLERS, broken)
        (broken / "boom.py").write_text("def handler(event, context):\n    raise RuntimeError('boom')\n")
        v2 = deploy.publish_version(cloud, "PingFunction", code_dir=broken, handler="boom.handler")
        assert (v1, v2) == ("PingFunction:1", "PingFunction:2")
        clock = deploy.ManualClock()
        alarm = deploy.ErrorAlarm("PingErrors", v2, cloudwatch=cloud.client("cloudwatch"))
        rollout = deploy.Deployment(cloud, deploy.Alias("live", {v1: 1.0}), v2, alarms=[alarm], clock=clock, seed=0)
        for _ in range(60):
            rollout.invoke({})
            clock.advance(0.05)
            if rollout.status != "InProgress":
                break
        assert rollout.status == "RolledBack"
        assert cloud.client("cloudwatch").describe_alarms()["MetricAlarms"][0]["StateValue"] == "ALARM"
        assert deploy.leftovers(cloud)
        quota = cloud.outputs["QuotaTableName"]
        cloud.client("dynamodb").delete_table(TableName=quota)  # a partial clean-up by hand
        done = deploy.delete_stack(cloud)
        assert ("AWS::DynamoDB::Table", quota, "already gone") in done
        assert ("alarm", "PingErrors", "deleted") in done
        assert deploy.leftovers(cloud) == {}
    finally:
        cloud.stop()
    assert deploy.local_processes() == []


def test_logs_cli_reads_a_cloud_started_in_this_process(tmp_path: Path, sns_cloud: object) -> None:
    sns_cloud.invoke("PingFunction", json.loads((REPO / "sam-app" / "events" / "ping.json").read_text()))
    sns_cloud._logs.flush()
    answer = deploy.logs_cli(sns_cloud, "PingFunction", "--filter", "REPORT", "--since", "5m", state_dir=tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert "REPORT RequestId" in answer.stdout
