"""How close is the local cloud to the floor? Measured side by side in one run.

Run from the repository root::

    python -m benchmarks.local_runtime [--json] [--requests 500] [--cold-starts 5]

* ``up``: seconds from ``LocalCloud.start()`` to an API that answers.
* warm ``GET /ping`` through the local API Gateway and Lambda runtime (keep-alive HTTP, median and p99)
  against calling the same handler in-process (the floor: no HTTP, no runtime).
* PingFunction's Init Duration (cold starts, median) against a bare process that only imports
  ``awslambdaric``'s bootstrap, which every execution environment must do anyway.
* CreateThumbnailFunction's Init Duration (it imports Pillow and Powertools).

No .pyc files are written on these machines (PYTHONDONTWRITEBYTECODE=1), so every cold start here
compiles its imports: the figures measure that case. It always exits 0: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"ping_median_over_inprocess_ms": 3.0, "ping_init_over_bare": 1.5}


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def warm_ping_ms(api_url: str, requests: int) -> list[float]:
    """Latency of GET /ping on one keep-alive connection, after a warm-up."""
    url = urlparse(api_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    timings = []
    for i in range(requests + 20):
        started = time.perf_counter()
        connection.request("GET", "/ping")
        response = connection.getresponse()
        response.read()
        if i >= 20:
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status == 200
    connection.close()
    return timings


def in_process_ping_ms(requests: int) -> list[float]:
    """The same handler called directly: the floor the local API and runtime add to."""
    sys.path.insert(0, str(ROOT / "sam-app" / "src"))
    from thumbnailr.handlers.ping import lambda_handler

    event = json.loads((ROOT / "sam-app" / "events" / "ping.json").read_text())
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        lambda_handler(event, None)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def bare_process_ms(runs: int) -> list[float]:
    """A process that only imports what awslambdaric must import before it asks for the first event."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import awslambdaric.bootstrap"], check=True)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def init_durations_ms(cloud, function: str, event: dict, runs: int) -> list[float]:
    durations = []
    for _ in range(runs):
        cloud.runtime.reset(function)  # the next call is a cold start
        result = cloud.invoke(function, event)
        durations.append(result.report.init_duration_ms)
    return durations


def measure(requests: int, cold_starts: int) -> dict:
    from localcloud import LocalCloud

    _progress("starting the local cloud")
    began = time.perf_counter()
    cloud = LocalCloud(ROOT / "sam-app" / "template.yaml", port=0, control=False).start()
    up_s = time.perf_counter() - began
    try:
        _progress(f"{requests} warm GET /ping through the local API")
        http_ms = warm_ping_ms(cloud.api_url, requests)
        inproc_ms = in_process_ping_ms(requests)
        _progress(f"{cold_starts} cold starts of PingFunction and CreateThumbnailFunction")
        ping_event = json.loads((ROOT / "sam-app" / "events" / "ping.json").read_text())
        ping_init = init_durations_ms(cloud, "PingFunction", ping_event, cold_starts)
        create_event = json.loads((ROOT / "sam-app" / "events" / "create_thumbnail_sns.json").read_text())
        create_init = init_durations_ms(cloud, "CreateThumbnailFunction", create_event, cold_starts)
    finally:
        cloud.stop()
    bare = bare_process_ms(cold_starts)
    result = {
        "up_s": round(up_s, 2),
        "ping_http_median_ms": round(statistics.median(http_ms), 3),
        "ping_http_p99_ms": round(percentile(http_ms, 99), 3),
        "ping_inprocess_median_ms": round(statistics.median(inproc_ms), 4),
        "ping_init_median_ms": round(statistics.median(ping_init), 1),
        "bare_awslambdaric_median_ms": round(statistics.median(bare), 1),
        "create_init_median_ms": round(statistics.median(create_init), 1),
    }
    result["ping_median_over_inprocess_ms"] = round(result["ping_http_median_ms"] - result["ping_inprocess_median_ms"], 3)
    result["ping_init_over_bare"] = round(result["ping_init_median_ms"] / result["bare_awslambdaric_median_ms"], 2)
    result["targets"] = {
        "warm /ping median within 3 ms of in-process": result["ping_median_over_inprocess_ms"] <= 3.0,
        "Ping Init Duration within 1.5x of a bare awslambdaric process": result["ping_init_over_bare"] <= 1.5,
    }
    return result


def render(result: dict) -> str:
    lines = [
        f"up (to an answering API)            {result['up_s']:8.2f} s",
        f"warm GET /ping, local API   median  {result['ping_http_median_ms']:8.3f} ms   p99 {result['ping_http_p99_ms']:.3f} ms",
        f"same handler in-process     median  {result['ping_inprocess_median_ms']:8.4f} ms"
        f"   -> the local API + runtime add {result['ping_median_over_inprocess_ms']:.3f} ms",
        f"PingFunction Init Duration  median  {result['ping_init_median_ms']:8.1f} ms",
        f"bare `import awslambdaric`  median  {result['bare_awslambdaric_median_ms']:8.1f} ms"
        f"   -> ratio {result['ping_init_over_bare']:.2f}x",
        f"CreateThumbnail Init Duration median {result['create_init_median_ms']:7.1f} ms (Pillow + Powertools, no .pyc)",
        "for reference: `sam local invoke` starts a container per call (seconds); AWS reports about 80 ms",
        "Init Duration for a python3.13 arm64 hello world.",
    ]
    lines += [f"{'PASS' if met else 'FAIL'}  {label}" for label, met in result["targets"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--cold-starts", type=int, default=5)
    args = parser.parse_args(argv)
    result = measure(args.requests, args.cold_starts)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
