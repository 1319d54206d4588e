"""Load: 200 thumbnail requests from 5 users at once through the local API, every one accounted for.

    python -m benchmarks.load            # the figures and the accounting, for people
    python -m benchmarks.load --json     # the same, for machines

Starts a LocalCloud with ``MonthlyQuota=30``; each user uploads one photo (presigned POST), then the
5 users send their 40 requests each at the same time (one thread and one keep-alive connection per
user). Past 30 a user's requests are refused with 429. Afterwards it waits for every accepted
thumbnail and checks: each request is a 202 that became ``ready`` or a 429, each user's quota counter
is exactly 30, each ready thumbnail has exactly one object, and there is no other object. It prints
requests per second, p50 and p99 latency of ``POST /thumbnails``, and the accounting; the exit code
is 1 if anything is unaccounted for.
"""

from __future__ import annotations

import argparse
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
                try:
                    answer = session.post(f"{api}thumbnails", timeout=60,
                                          json={"photo_id": person["photo_id"], "width": w, "height": h, "format": fmt})
                    status, body = answer.status_code, answer.json()
                except (requests.RequestException, ValueError) as e:
                    status, body = 0, {"error": repr(e)}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--quota", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.users, args.requests, args.quota, verbose=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"\n{result['requests']} POST /thumbnails from {result['users']} users at once, "
              f"{result['seconds']} s: {result['requests_per_second']} requests/s, "
              f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (mean {result['mean_ms']} ms)")
        print(f"accounting: {result['accepted_202']} accepted (202) -> {result['ready']} ready, "
              f"{result['failed']} failed, {result['pending']} pending; {result['refused_429']} refused (429, quota); "
              f"{len(result['other_answers'])} other answers")
        print(f"quota: {result['quota']} per user, counters {result['quota_used']} "
              f"({'exact' if result['quota_exact'] else 'NOT EXACT'}); {result['thumbnail_objects']} thumbnail objects, "
              f"{result['duplicate_objects']} duplicates, {result['stray_objects']} strays")
        print(f"lost: {result['lost']}")
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
