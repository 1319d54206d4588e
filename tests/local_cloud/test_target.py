"""The notebooks' target on a local cloud: every answer comes through AWS's own APIs (Lambda, CloudWatch Logs,
IAM, Cognito, CloudFormation), as it would from an account."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from workshop.target import local_target

pytestmark = pytest.mark.local_cloud
EVENTS = Path(__file__).resolve().parents[2] / "sam-app" / "events"
STREAM = "import os\n\ndef handler(event, context):\n    return {'stream': os.environ['AWS_LAMBDA_LOG_STREAM_NAME']}\n"


def test_invoke_reads_the_answer_and_its_report_line_from_lambdas_invoke(sns_cloud: object) -> None:
    cloud = local_target(sns_cloud)
    answer = cloud.invoke("PingFunction", json.loads((EVENTS / "ping.json").read_text()))
    assert answer.status_code == 200 and answer.json()["statusCode"] == 200 and answer.function_error is None
    assert answer.function_name == sns_cloud.function_name("PingFunction")  # the logical id was looked up
    assert answer.report is not None and answer.report.request_id == answer.request_id
    assert answer.log_lines[-1].startswith("REPORT RequestId:")


def test_a_toy_function_is_created_gets_cold_starts_on_demand_and_is_deleted(sns_cloud: object) -> None:
    cloud = local_target(sns_cloud)
    since = time.time() - 1
    name = cloud.create_function("TargetProbe", {"probe.py": STREAM}, "probe.handler")
    assert name == "workshop-TargetProbe"
    assert cloud.client("lambda").get_function(FunctionName=name)["Configuration"]["Role"].endswith(
        "role/workshop-toy-functions")
    first, second = cloud.invoke("TargetProbe"), cloud.invoke("TargetProbe")
    assert (first.cold_start, second.cold_start) == (True, False)
    assert first.json()["stream"] == second.json()["stream"]  # one environment, reused
    cloud.new_environments("TargetProbe")
    third = cloud.invoke("TargetProbe")
    assert third.cold_start and third.json()["stream"] != first.json()["stream"]

    # the environments, as CloudWatch Logs shows them: one log stream each, with their calls
    environments = cloud.environments("TargetProbe", since, at_least=3)
    assert [len(e.invocations) for e in environments] == [2, 1]
    assert [e.id for e in environments] == [first.json()["stream"], third.json()["stream"]]
    assert all(e.init_duration_ms and e.spawned_at < e.invocations[0][1] for e in environments)
    assert cloud.log_stream_of(second) == first.json()["stream"]

    assert "workshop-TargetProbe" in cloud.delete_toy_functions()
    assert cloud.client("lambda").list_functions()["Functions"] == [
        f for f in cloud.client("lambda").list_functions()["Functions"] if not f["FunctionName"].startswith("workshop-")]
    assert cloud.delete_toy_role() is True and cloud.delete_toy_role() is False


def test_a_user_signs_in_through_cognito_and_the_clis_see_the_stack(sns_cloud: object) -> None:
    cloud = local_target(sns_cloud)
    assert cloud.signed_in("target-user").call("POST", "photos", {"content_type": "text/plain"})[0] == 400
    listed = json.loads(cloud.sam("list", "stack-outputs", "--stack-name", cloud.stack_name, "--output", "json").stdout)
    assert {o["OutputKey"]: o["OutputValue"] for o in listed}["ApiUrl"] == cloud.api_url
    names = {f["FunctionName"] for f in cloud.aws("lambda", "list-functions")["Functions"]}
    assert cloud.function_name("PingFunction") in names
