"""What does speaking AWS's own API cost? The local endpoint measured side by side with the in-process call.

Run from the repository root::

    python -m benchmarks.endpoint [--json] [--invokes 300] [--deploys 1]

* warm ``Invoke`` of PingFunction through boto3's ``lambda`` client against the endpoint (SigV4, HTTP, the
  Lambda API's codec, then the runtime), against ``cloud.invoke`` of the same function in-process (the
  runtime alone): the median of each and what the API adds.
* a boto3 S3 ``HeadBucket`` through the endpoint against the same call straight to moto: what the router's
  hop adds to every call that moto answers.
* ``sam deploy`` of a one-function SAM app, then of the same app unchanged (a no-op: "No changes to
  deploy"), then of a one-line code change, in seconds (SAM CLI's own start-up included: ``sam --version``
  is measured too, as the floor of any ``sam`` command), and that change again with ``SAM_CLI_POLL_DELAY=0.5``:
  SAM CLI waits 5 s by default before it first reads a stack's events, whatever the endpoint.

It always exits 0: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

APP = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.13}
"""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed_ms(call, runs: int) -> list[float]:
    for _ in range(10):  # warm-up: environments started, connections open
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _sam(cloud, *args: str, cwd: Path, poll_delay: float | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SAM_CLI_POLL_DELAY"}
    env.update(cloud.environment())
    if poll_delay is not None:  # SAM CLI waits this long (5 s by default) before it first reads the stack's events
        env["SAM_CLI_POLL_DELAY"] = str(poll_delay)
    env.update({"SAM_CLI_TELEMETRY": "0", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "sam"), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"sam {' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def deploy_seconds(cloud, deploys: int) -> dict[str, float]:
    """sam deploy: first, unchanged (no-op), one function's code changed; medians over ``deploys`` rounds."""
    deploy = ("deploy", "--stack-name", "bench", "--resolve-s3", "--no-confirm-changeset",
              "--no-fail-on-empty-changeset", "--capabilities", "CAPABILITY_IAM", "--region", cloud.region)
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        (app / "src").mkdir()
        (app / "template.yaml").write_text(APP)
        (app / "src" / "app.py").write_text("def handler(event, context):\n    return 0\n")
        version = statistics.median(_sam(cloud, "--version", cwd=app) for _ in range(3))
        first = _sam(cloud, *deploy, cwd=app)
        noop, change, change_fast = [], [], []
        for i in range(deploys):
            noop.append(_sam(cloud, *deploy, cwd=app))
            (app / "src" / "app.py").write_text(f"def handler(event, context):\n    return {2 * i + 1}\n")
            change.append(_sam(cloud, *deploy, cwd=app))
            (app / "src" / "app.py").write_text(f"def handler(event, context):\n    return {2 * i + 2}\n")
            change_fast.append(_sam(cloud, *deploy, cwd=app, poll_delay=0.5))
    return {"sam_version_s": round(version, 2), "deploy_first_s": round(first, 2),
            "deploy_noop_s": round(statistics.median(noop), 2), "deploy_code_change_s": round(statistics.median(change), 2),
            "deploy_code_change_poll_0_5_s": round(statistics.median(change_fast), 2)}


def measure(invokes: int, deploys: int) -> dict:
    import boto3

    from localcloud import FAKE_CREDENTIALS, LocalCloud

    _progress("starting the local cloud")
    cloud = LocalCloud(ROOT / "sam-app" / "template.yaml", port=0, control=False).start()
    try:
        lam = cloud.client("lambda")
        ping = cloud.function_name("PingFunction")
        _progress(f"{invokes} warm invokes through the endpoint and in-process")
        api_ms = _timed_ms(lambda: lam.invoke(FunctionName=ping, Payload=b"{}")["Payload"].read(), invokes)
        inproc_ms = _timed_ms(lambda: cloud.invoke("PingFunction", {}), invokes)
        bucket = cloud.stack.physical_name(cloud.stack.of_type("AWS::S3::Bucket")[0])
        moto = boto3.client("s3", endpoint_url=cloud.moto_url, region_name=cloud.region,
                            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        routed_ms = _timed_ms(lambda: cloud.client("s3").head_bucket(Bucket=bucket), invokes)
        direct_ms = _timed_ms(lambda: moto.head_bucket(Bucket=bucket), invokes)
        _progress("sam deploy: first, unchanged, one code change")
        deploys_s = deploy_seconds(cloud, deploys)
    finally:
        cloud.stop()
    result = {
        "invoke_api_median_ms": round(statistics.median(api_ms), 3),
        "invoke_api_p99_ms": round(sorted(api_ms)[int(0.99 * (len(api_ms) - 1))], 3),
        "invoke_inprocess_median_ms": round(statistics.median(inproc_ms), 3),
        "s3_routed_median_ms": round(statistics.median(routed_ms), 3),
        "s3_direct_median_ms": round(statistics.median(direct_ms), 3),
        **deploys_s,
    }
    result["invoke_api_over_inprocess_ms"] = round(result["invoke_api_median_ms"] - result["invoke_inprocess_median_ms"], 3)
    result["router_hop_ms"] = round(result["s3_routed_median_ms"] - result["s3_direct_median_ms"], 3)
    return result


def render(result: dict) -> str:
    return "\n".join([
        f"warm Invoke through the endpoint (boto3)  median {result['invoke_api_median_ms']:8.3f} ms"
        f"   p99 {result['invoke_api_p99_ms']:.3f} ms",
        f"same function in-process (cloud.invoke)   median {result['invoke_inprocess_median_ms']:8.3f} ms"
        f"   -> the Lambda API adds {result['invoke_api_over_inprocess_ms']:.3f} ms",
        f"S3 HeadBucket through the endpoint        median {result['s3_routed_median_ms']:8.3f} ms",
        f"S3 HeadBucket straight to moto            median {result['s3_direct_median_ms']:8.3f} ms"
        f"   -> the router's hop adds {result['router_hop_ms']:.3f} ms",
        f"sam --version (SAM CLI's start-up)               {result['sam_version_s']:8.2f} s",
        f"sam deploy, first (a new stack + managed bucket) {result['deploy_first_s']:8.2f} s",
        f"sam deploy, unchanged (no-op)                    {result['deploy_noop_s']:8.2f} s",
        f"sam deploy, one function's code changed          {result['deploy_code_change_s']:8.2f} s",
        f"  the same with SAM_CLI_POLL_DELAY=0.5 (SAM's own 5 s wait before reading events)"
        f" {result['deploy_code_change_poll_0_5_s']:5.2f} s",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--invokes", type=int, default=300)
    parser.add_argument("--deploys", type=int, default=1, help="rounds of (no-op, code change) deploys")
    args = parser.parse_args(argv)
    result = measure(args.invokes, args.deploys)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
