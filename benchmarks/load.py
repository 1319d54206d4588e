"""Load: 200 thumbnail requests from 5 users at once through the local API, every one accounted for; a burst.

    python -m benchmarks.load            # the figures and the accounting, for people
    python -m benchmarks.load --json     # the same, for machines
    python -m benchmarks.load --burst-only   # only the burst and front figures (seconds, not minutes)
    python -m benchmarks.load --burst-only --peer-port 3999   # and a running `serverless offline` beside it

(The peer, out of the repo: ``npm install serverless@3 serverless-offline@13`` in a scratch folder, a
``serverless.yml`` with one ``http`` event ``GET /hello`` whose handler imports
``thumbnailr.handlers.ping.lambda_handler``, ``PYTHONPATH=sam-app/src npx serverless offline``.)

Starts a LocalCloud with ``MonthlyQuota=30``; each user uploads one photo (presigned POST), then the
5 users send their 40 requests each at the same time (one thread and one keep-alive connection per
user). Past 30 a user's requests are refused with 429. Afterwards it waits for every accepted
thumbnail and checks: each request is a 202 that became ``ready`` or a 429, each user's quota counter
is exactly 30, each ready thumbnail has exactly one object, and there is no other object. It prints
requests per second, p50 and p99 latency of ``POST /thumbnails``, and the accounting; the exit code
is 1 if anything is unaccounted for. The template throttles each method (50 a second, a burst of 100):
a user's request answered ``429 Too Many Requests`` (API Gateway's throttle, not the quota) is sent
again after a pause, as AWS tells clients to do, and counted.

Then the front, on ``GET /ping`` (no auth), beside the same handler called in-process:

* a burst of 500 simultaneous new connections (``BURST``): how many are answered, with which
  statuses (the stage's throttling answers past its burst with 429), p50/p99 of the answers;
* 20 keep-alive clients for 2 s: requests per second (the stage's throttling lifted for this one
  measure, as serverless-offline has none: it is the front's capacity that is measured);
* warm p50/p99 of one client in a row, and the overhead over the in-process call.

The peers' figures (serverless-offline 13.10, same handler, same machine; from the issue) are printed
beside ours: a burst of 150 answered 150/150, 5,162 requests/s with 20 clients, warm p50 0.73 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.photos import encode, realistic_photo

# The app's code lives in sam-app/src; make the plain `python -m benchmarks.load` work from the repo root.
if importlib.util.find_spec("thumbnailr") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sam-app" / "src"))

PASSWORD = "Passw0rd!"
BURST = 500
#: serverless-offline 13.10 (serverless 3.40, Node 20) on this machine, same Python handler, GET /hello
PEER = {"burst": "150/150 answered", "clients_20_rps": 5162, "warm_p50_ms": 0.73, "warm_p99_ms": 3.99}
TEMPLATE = Path(__file__).resolve().parents[1] / "sam-app" / "template.yaml"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def run(users: int = 5, total: int = 200, quota: int = 30, verbose: bool = True) -> dict[str, Any]:
    from thumbnailr.adapters.dynamodb import from_item
    from localcloud import LocalCloud

    say = print if verbose else (lambda *a, **k: None)
    per_user = total // users
    started = time.monotonic()
    with LocalCloud(TEMPLATE, port=0, dispatch="sns", parameters={"MonthlyQuota": str(quota)}, control=False,
                    retry_delays=(0.05, 0.1), stream_retry_delay=0.05) as cloud:
        say(f"local cloud up in {time.monotonic() - started:.1f} s")
        api = cloud.api_url
        people = []
        for i in range(users):
            name = f"load{i}"
            cloud.add_user(name, PASSWORD)
            session = requests.Session()
            session.headers["Authorization"] = cloud.token(name, PASSWORD)
            created = session.post(f"{api}photos", json={"content_type": "image/jpeg"}, timeout=60).json()
            form = created["upload"]
            requests.post(form["url"], data=form["fields"], timeout=60,
                          files={"file": ("p.jpg", encode(realistic_photo(320, 240, seed=i), "JPEG", quality=85), "image/jpeg")})
            people.append({"name": name, "session": session, "photo_id": created["photo_id"], "answers": []})
        for person in people:
            deadline = time.monotonic() + 60
            while person["session"].get(f"{api}photos/{person['photo_id']}", timeout=60).json()["status"] == "pending":
                if time.monotonic() > deadline:
                    raise SystemExit(f"{person['name']}'s photo never became ready")
                time.sleep(0.1)
        # warm the API's environments first, as in a service already running: each user sends one
        # invalid request (400, no quota spent), all at once; not counted
        warm = [threading.Thread(target=lambda p=p: p["session"].post(f"{api}thumbnails", json={}, timeout=60))
                for p in people]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        barrier = threading.Barrier(users + 1)

        def send(person: dict[str, Any]) -> None:
            session = person["session"]
            sizes = [(64, 64, "JPEG"), (128, 96, "PNG"), (96, 128, "WEBP")]
            barrier.wait()
            for n in range(per_user):
                w, h, fmt = sizes[n % len(sizes)]
                t0 = time.perf_counter()
                pause = 0.05
                while True:
                    try:
                        answer = session.post(f"{api}thumbnails", timeout=60,
                                              json={"photo_id": person["photo_id"], "width": w, "height": h, "format": fmt})
                        status, body = answer.status_code, answer.json()
                    except (requests.RequestException, ValueError) as e:
                        status, body = 0, {"error": repr(e)}
                    if status == 429 and body.get("message") == "Too Many Requests":  # the stage's throttle
                        person["throttled"] = person.get("throttled", 0) + 1
                        time.sleep(pause)
                        pause = min(pause * 2, 1.0)
                        continue
                    break
                person["answers"].append((status, body, time.perf_counter() - t0))

        threads = [threading.Thread(target=send, args=(p,)) for p in people]
        for t in threads:
            t.start()
        barrier.wait()
        t_start = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start

        answers = [a for p in people for a in p["answers"]]
        latencies = [a[2] * 1000 for a in answers]
        accepted = {p["name"]: [a[1]["thumbnail_id"] for a in p["answers"] if a[0] == 202] for p in people}
        refused = sum(1 for a in answers if a[0] == 429 and "quota" in a[1].get("message", ""))
        other = [a[:2] for a in answers if a[0] not in (202, 429)]

        # wait for every accepted thumbnail to finish
        ddb, s3 = cloud.client("dynamodb"), cloud.client("s3")
        table = cloud.outputs["ThumbnailsTableName"]
        deadline = time.monotonic() + 180
        while True:
            items = [from_item(i) for i in ddb.scan(TableName=table, ConsistentRead=True)["Items"]]
            if all(i["status"] != "pending" for i in items) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        cloud.wait_idle(10)
        items = {i["thumbnail_id"]: i for i in
                 (from_item(i) for i in ddb.scan(TableName=table, ConsistentRead=True)["Items"])}
        quota_items = {i["user_id"]: i["used"] for i in
                       (from_item(i) for i in ddb.scan(TableName=cloud.outputs["QuotaTableName"], ConsistentRead=True)["Items"])}
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cloud.outputs["ThumbnailsBucketName"])
                for o in page.get("Contents", [])]

    all_accepted = [t for ids in accepted.values() for t in ids]
    ready = [t for t in all_accepted if items.get(t, {}).get("status") == "ready"]
    failed = [t for t in all_accepted if items.get(t, {}).get("status") == "failed"]
    pending = [t for t in all_accepted if items.get(t, {}).get("status") == "pending"]
    missing = [t for t in all_accepted if t not in items]
    object_ids = [k.split("/", 1)[1].rsplit(".", 1)[0] for k in keys]
    duplicates = len(object_ids) - len(set(object_ids))
    strays = sorted(set(object_ids) - set(ready))
    quota_ok = all(quota_items.get(sub) == min(quota, per_user) for sub in {i["owner"] for i in items.values()}) \
        and len(quota_items) == users and all(len(ids) == min(quota, per_user) for ids in accepted.values())
    lost = len(other) + len(pending) + len(missing) + len(failed) + duplicates + len(strays) + \
        (total - len(answers)) + (0 if quota_ok else 1)
    result = {
        "users": users,
        "requests": len(answers),
        "seconds": round(wall, 3),
        "requests_per_second": round(len(answers) / wall, 1) if wall else 0.0,
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p99_ms": round(_percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else 0.0,
        "accepted_202": len(all_accepted),
        "refused_429": refused,
        "throttled_and_resent": sum(p.get("throttled", 0) for p in people),
        "other_answers": other[:5],
        "ready": len(ready),
        "failed": len(failed),
        "pending": len(pending),
        "quota": quota,
        "quota_used": sorted(quota_items.values()),
        "quota_exact": quota_ok,
        "thumbnail_objects": len(keys),
        "duplicate_objects": duplicates,
        "stray_objects": len(strays),
        "lost": lost,
    }
    return result


def _ping_in_process(count: int) -> list[float]:
    """Latencies (ms) of the ping handler called in this process with an API Gateway event: the floor."""
    from thumbnailr.handlers.ping import lambda_handler

    event = {"httpMethod": "GET", "path": "/ping", "resource": "/ping", "headers": {}, "body": None}
    lambda_handler(event, None)
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        lambda_handler(event, None)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def measure_front(port: int, path: str, burst: int = BURST, clients: int = 20, seconds: float = 2.0,
                  warm: int = 300, before_clients: Any = None, say: Any = print) -> dict[str, Any]:
    """The burst, the keep-alive clients' throughput and warm latency of ``GET path`` on 127.0.0.1:``port``."""
    import http.client
    import socket

    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as conn:  # a warm environment
        for _ in range(3):
            conn.request("GET", path)
            conn.getresponse().read()
    time.sleep(2.5)  # the burst meets a full bucket
    # -- the burst: every connection opened, then every request sent, then every answer read
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    barrier = threading.Barrier(burst + 1)
    lock = threading.Lock()

    def one() -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError as e:
            with lock:
                statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
            barrier.wait()
            return
        barrier.wait()
        t0 = time.perf_counter()
        try:
            sock.sendall(request)
            answer = http.client.HTTPResponse(sock)
            answer.begin()
            answer.read()
            key = str(answer.status)
            latencies.append((time.perf_counter() - t0) * 1000)
        except OSError as e:  # a reset or a time-out: not answered
            key = type(e).__name__
        finally:
            sock.close()
        with lock:
            statuses[key] = statuses.get(key, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(burst)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    burst_s = time.perf_counter() - t0
    answered = sum(v for k, v in statuses.items() if k.isdigit())
    say(f"burst of {burst}: {answered}/{burst} answered in {burst_s:.2f} s, statuses {dict(sorted(statuses.items()))}")

    if before_clients is not None:
        before_clients()
    stop = threading.Event()
    counts: list[tuple[int, int]] = []

    def client() -> None:
        ok = errors = 0
        with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
            while not stop.is_set():
                try:
                    conn.request("GET", path)
                    answer = conn.getresponse()
                    answer.read()
                except OSError:  # a reset or a time-out; the connection is made again
                    errors += 1
                    conn.close()
                    continue
                if answer.status == 200:
                    ok += 1
                else:
                    errors += 1
        counts.append((ok, errors))

    workers = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in workers:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - t0
    ok, errors = sum(c[0] for c in counts), sum(c[1] for c in counts)
    say(f"{clients} keep-alive clients: {ok / elapsed:,.0f} requests/s, {errors} errors")

    warm_ms = []
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
        for _ in range(warm):
            t1 = time.perf_counter()
            try:
                conn.request("GET", path)
                conn.getresponse().read()
            except OSError:
                conn.close()
                continue
            warm_ms.append((time.perf_counter() - t1) * 1000)
    floor = _ping_in_process(warm)
    return {
        "burst": burst, "burst_answered": answered, "burst_statuses": statuses, "burst_seconds": round(burst_s, 2),
        "burst_p50_ms": round(_percentile(latencies, 50), 1), "burst_p99_ms": round(_percentile(latencies, 99), 1),
        "clients": clients, "clients_rps": round(ok / elapsed), "clients_errors": errors,
        "warm_p50_ms": round(_percentile(warm_ms, 50), 2), "warm_p99_ms": round(_percentile(warm_ms, 99), 2),
        "in_process_p50_ms": round(_percentile(floor, 50), 3),
        "overhead_p50_ms": round(_percentile(warm_ms, 50) - _percentile(floor, 50), 2),
    }


def run_front(burst: int = BURST, clients: int = 20, seconds: float = 2.0, warm: int = 300,
              verbose: bool = True, peer_port: int | None = None) -> dict[str, Any]:
    """Ours on ``GET /ping`` (see the module docstring); and a running peer's on ``GET /hello`` at ``peer_port``."""
    from localcloud import LocalCloud
    from localcloud.apigateway.throttle import StageThrottle

    say = print if verbose else (lambda *a, **k: None)
    with LocalCloud(TEMPLATE, port=0, dispatch="sns", control=False) as cloud:
        gateway = cloud.gateway

        def lift() -> None:  # the front's capacity, not the template's limit (serverless-offline has none)
            gateway._throttle = StageThrottle(())  # noqa: SLF001

        result = measure_front(gateway.port, "/Prod/ping", burst, clients, seconds, warm, lift, say)
    result["peer_serverless_offline"] = PEER
    if peer_port is not None:
        say(f"the peer on 127.0.0.1:{peer_port}, measured now:")
        result["peer_measured"] = measure_front(peer_port, "/hello", burst, clients, seconds, warm, None, say)
    return result


def _print_front(r: dict[str, Any]) -> None:
    print("\nGET /ping, ours beside serverless-offline 13.10 (same handler, same machine):")
    print(f"  burst of {r['burst']} new connections: {r['burst_answered']}/{r['burst']} answered "
          f"({r['burst_statuses']}) in {r['burst_seconds']} s, p50 {r['burst_p50_ms']} ms, p99 {r['burst_p99_ms']} ms"
          f"   | peer: a burst of 150, {PEER['burst']}")
    print(f"  {r['clients']} keep-alive clients: {r['clients_rps']:,} requests/s, {r['clients_errors']} errors"
          f"   | peer: {PEER['clients_20_rps']:,} requests/s")
    print(f"  warm, one client: p50 {r['warm_p50_ms']} ms, p99 {r['warm_p99_ms']} ms; in-process handler p50 "
          f"{r['in_process_p50_ms']} ms: overhead {r['overhead_p50_ms']} ms"
          f"   | peer: p50 {PEER['warm_p50_ms']} ms, p99 {PEER['warm_p99_ms']} ms")
    p = r.get("peer_measured")
    if p:
        print(f"serverless-offline measured in this run (GET /hello, same handler): burst of {p['burst']}: "
              f"{p['burst_answered']}/{p['burst']} answered ({p['burst_statuses']}) in {p['burst_seconds']} s, "
              f"p50 {p['burst_p50_ms']} ms, p99 {p['burst_p99_ms']} ms; {p['clients']} clients: "
              f"{p['clients_rps']:,} requests/s, {p['clients_errors']} errors; warm p50 {p['warm_p50_ms']} ms, "
              f"p99 {p['warm_p99_ms']} ms (overhead {p['overhead_p50_ms']} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--quota", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--burst", type=int, default=BURST, help="simultaneous connections of the burst")
    parser.add_argument("--burst-only", action="store_true", help="only the burst and the front's figures")
    parser.add_argument("--peer-port", type=int, help="a running `serverless offline` serving GET /hello with the "
                                                      "ping handler on this port: measured beside ours")
    args = parser.parse_args(argv)
    front = run_front(args.burst, verbose=not args.json, peer_port=args.peer_port)
    if args.burst_only:
        if args.json:
            print(json.dumps(front, indent=2))
        else:
            _print_front(front)
        return 0 if front["burst_answered"] == args.burst else 1
    result = run(args.users, args.requests, args.quota, verbose=not args.json)
    result["front"] = front
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_front(front)
        print(f"\n{result['requests']} POST /thumbnails from {result['users']} users at once, "
              f"{result['seconds']} s: {result['requests_per_second']} requests/s, "
              f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (mean {result['mean_ms']} ms)")
        print(f"accounting: {result['accepted_202']} accepted (202) -> {result['ready']} ready, "
              f"{result['failed']} failed, {result['pending']} pending; {result['refused_429']} refused (429, quota); "
              f"{len(result['other_answers'])} other answers")
        print(f"quota: {result['quota']} per user, counters {result['quota_used']} "
              f"({'exact' if result['quota_exact'] else 'NOT EXACT'}); {result['thumbnail_objects']} thumbnail objects, "
              f"{result['duplicate_objects']} duplicates, {result['stray_objects']} strays")
        print(f"throttled by the stage (429 Too Many Requests) and sent again: {result['throttled_and_resent']}")
        print(f"lost: {result['lost']}")
    return 0 if result["lost"] == 0 and front["burst_answered"] == args.burst else 1


if __name__ == "__main__":
    sys.exit(main())
