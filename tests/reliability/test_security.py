"""Security properties the least-privilege test (tests/unit/test_least_privilege.py) does not cover:
tokens never logged, presigned URLs expire, buckets private and encrypted, no secret in the
repository or in a notebook's outputs, and no real AWS call without opt-in.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.reliability import harness

pytestmark = pytest.mark.local_cloud

REPO = harness.REPO


@pytest.fixture(scope="module")
def flow() -> Any:
    """One cloud, the whole flow with a real token, plus a few refused requests; the access log kept."""
    from benchmarks.photos import encode, realistic_photo

    access_log: list[dict] = []
    with harness.local_cloud(dispatch="sns", on_request=access_log.append) as cloud:
        api = harness.Api(cloud)
        auth = harness.new_user(cloud, "secret")
        created = api.post("photos", headers=auth, json={"content_type": "image/jpeg"}).json()
        form = created["upload"]
        harness.count("requests")
        requests.post(form["url"], data=form["fields"],
                      files={"file": ("p.jpg", encode(realistic_photo(64, 48, seed=2), "JPEG"), "image/jpeg")}, timeout=30)
        photo_id = created["photo_id"]
        assert harness.wait_photo(api, auth, photo_id)["status"] == "ready"
        tid = api.post("thumbnails", headers=auth, json={"photo_id": photo_id, "width": 16, "height": 16, "format": "PNG"}).json()["thumbnail_id"]
        thumbnail = harness.wait_thumbnail(api, auth, tid)
        assert thumbnail["status"] == "ready"
        # refused requests carry the token too: an error path must not log it either
        api.post("thumbnails", headers=auth, json={"photo_id": photo_id, "width": -1, "height": 1, "format": "PNG"})
        api.get("photos/" + "0" * 32, headers=auth)
        api.post("photos", headers=auth, data="{not json")
        api.get("photos/x", headers={"Authorization": auth["Authorization"][:-4] + "AAAA"})
        cloud.wait_idle(10)
        cloud._logs.flush(5.0)
        yield {"cloud": cloud, "token": auth["Authorization"], "created": created, "thumbnail": thumbnail,
               "access_log": access_log}


def _cloudwatch_messages(cloud: Any) -> list[str]:
    logs = cloud.client("logs")
    messages = []
    for group in logs.describe_log_groups()["logGroups"]:
        kwargs: dict[str, Any] = {"logGroupName": group["logGroupName"]}
        while True:
            page = logs.filter_log_events(**kwargs)
            messages += [e["message"] for e in page["events"]]
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    return messages


def test_tokens_are_never_logged(flow: dict) -> None:
    cloud, token = flow["cloud"], flow["token"]
    signature = token.rsplit(".", 1)[1]
    cloudwatch = _cloudwatch_messages(cloud)
    runtime_lines = [line for _, result in cloud.results for line in result.log_lines]
    # the logs are really there: every function that ran logged, with Powertools' JSON lines
    assert len(cloudwatch) >= 20 and any('"level":"INFO"' in m.replace(" ", "") for m in cloudwatch)
    assert any("thumbnail requested" in m for m in cloudwatch)
    for where, lines in (("CloudWatch Logs", cloudwatch), ("the runtime's log lines", runtime_lines),
                         ("the API's access log", [json.dumps(r) for r in flow["access_log"]])):
        leaks = [line[:200] for line in lines if signature in line or token[:40] in line]
        assert leaks == [], f"the token is in {where}: {leaks}"


def test_presigned_urls_expire_in_five_minutes(flow: dict) -> None:
    """The app asks for short-lived presigned URLs and a tight POST policy; S3 (and the local cloud's endpoint,
    tests/local_cloud/test_s3_checks.py) enforces them."""
    created = flow["created"]
    assert created["expires_in"] == 300
    policy = json.loads(base64.b64decode(created["upload"]["fields"]["policy"]))
    expiration = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 240 <= expiration - time.time() <= 300
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 20 * 1024 * 1024] in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert {"key": f"photos/{created['photo_id']}"} in conditions  # the key is fixed: no uploading elsewhere
    query = parse_qs(urlsplit(flow["thumbnail"]["url"]).query)
    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]


def test_buckets_block_public_access_and_are_encrypted(flow: dict) -> None:
    cloud = flow["cloud"]
    stack = cloud.stack
    s3 = cloud.client("s3")
    buckets = stack.of_type("AWS::S3::Bucket")
    assert len(buckets) == 2
    for lid in buckets:
        props = stack.properties(lid)
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        assert "AccessControl" not in props and "WebsiteConfiguration" not in props
        name = stack.refs[lid]
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    for lid in stack.of_type("AWS::DynamoDB::Table"):
        assert stack.properties(lid)["SSESpecification"] == {"SSEEnabled": True}
    for lid in stack.of_type("AWS::SNS::Topic"):
        assert stack.properties(lid).get("KmsMasterKeyId")
    for lid in stack.of_type("AWS::SQS::Queue"):
        assert stack.properties(lid).get("SqsManagedSseEnabled") is True


# --------------------------------------------------------------------------- secrets in the repository

SECRET_PATTERNS = {
    "AWS access key id": r"(?<![A-Z0-9])(AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])",
    "AWS secret key assignment": r"(?i)aws_?secret_?access_?key['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    "JWT": r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}",
    "private key": r"-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----",
    "GitHub token": r"gh[pousr]_[A-Za-z0-9]{36}",
}


def _repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    return [REPO / name.decode() for name in listed if name and (REPO / name.decode()).is_file()]


def test_no_secret_in_the_repository() -> None:
    found = []
    files = _repository_files()
    assert len(files) > 50
    for path in files:
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            continue
        for name, pattern in SECRET_PATTERNS.items():
            for match in re.finditer(pattern, text):
                if "EXAMPLE" in match.group(0):  # AWS's documented example keys
                    continue
                found.append(f"{path.relative_to(REPO)}: {name}: {match.group(0)[:24]}...")
    assert found == []


def test_no_secret_in_a_notebook_output() -> None:
    notebooks = [p for p in _repository_files() if p.suffix == ".ipynb"]
    assert notebooks
    found = []
    for path in notebooks:
        cells = json.loads(path.read_text("utf-8")).get("cells", [])
        for index, cell in enumerate(cells):
            text = json.dumps(cell.get("outputs", []))
            for name, pattern in {**SECRET_PATTERNS, "a real account id in an ARN": r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(?!123456789012|000000000000)\d{12}:"}.items():
                if re.search(pattern, text):
                    found.append(f"{path.relative_to(REPO)} cell {index}: {name}")
    assert found == []


# --------------------------------------------------------------------------- no real AWS without opt-in

SITECUSTOMIZE = r'''
import ipaddress, os, socket
_LOG = os.environ["NET_GUARD_LOG"]
_real_connect, _real_connect_ex, _real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def _local(host):
    if host is None:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    host = host.split("%", 1)[0]
    if host in ("", "localhost", "localhost.localdomain"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback

def _note(what):
    with open(_LOG, "a") as f:
        f.write(f"{os.getpid()} {what}\n")
    raise OSError(f"net guard: {what} refused")

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _note(f"connect {address!r}")
    return _real_connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _note(f"connect_ex {address!r}")
    return _real_connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        _note(f"getaddrinfo {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
with open(_LOG, "a") as f:
    f.write("")
open(_LOG + ".loaded", "a").write(f"{os.getpid()}\n")
'''

FLOW = r'''
import dataclasses, os, sys, time, requests
from localcloud.cloud import LocalCloud
from benchmarks.photos import encode, realistic_photo

guard_dir = os.environ["NET_GUARD_DIR"]
with LocalCloud("sam-app/template.yaml", port=0, retry_delays=(0.05, 0.1), stream_retry_delay=0.05) as cloud:
    for name in cloud.runtime.functions():  # the Lambda environments (versions too) are processes: guard them
        spec = cloud.runtime.spec(name)
        cloud.runtime.register(dataclasses.replace(
            spec, environment={**spec.environment, "PYTHONPATH": f"{guard_dir}:{spec.code_dir}",
                               "NET_GUARD_LOG": os.environ["NET_GUARD_LOG"]}))
    cloud.add_user("ada", "Passw0rd!")
    auth = {"Authorization": cloud.token("ada", "Passw0rd!")}
    api = cloud.api_url
    created = requests.post(f"{api}photos", json={"content_type": "image/jpeg"}, headers=auth, timeout=30).json()
    form = created["upload"]
    requests.post(form["url"], data=form["fields"], timeout=30,
                  files={"file": ("p.jpg", encode(realistic_photo(64, 48, seed=1), "JPEG"), "image/jpeg")})
    for _ in range(200):
        if requests.get(f"{api}photos/{created['photo_id']}", headers=auth, timeout=30).json()["status"] != "pending":
            break
        time.sleep(0.1)
    tid = requests.post(f"{api}thumbnails", headers=auth, timeout=30,
                        json={"photo_id": created["photo_id"], "width": 8, "height": 8, "format": "PNG"}).json()["thumbnail_id"]
    for _ in range(200):
        body = requests.get(f"{api}thumbnails/{tid}", headers=auth, timeout=30).json()
        if body["status"] != "pending":
            break
        time.sleep(0.1)
    print("FLOW", body["status"], flush=True)
# the control: the guard does notice a lookup of AWS (and refuses it)
import socket
try:
    socket.getaddrinfo("sts.amazonaws.com", 443)
except OSError:
    print("GUARD works", flush=True)
'''


def test_no_real_aws_call_without_opt_in(tmp_path: Path) -> None:
    """Real-looking credentials in the environment and in ~/.aws (a profile too); the local cloud's whole
    flow in a subprocess whose every process (moto, the Lambda environments) loads a sitecustomize that
    logs, and refuses, any connection or name lookup outside this machine. The log must stay empty."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "net.log"
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    key, secret = "AKIA" + "Q" * 16, "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        f"[work]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    (home / ".aws" / "config").write_text(
        "[default]\nregion = eu-west-1\n[profile work]\nregion = eu-central-1\nendpoint_url = https://example.com\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKSHOP_"))}
    env.update({
        "HOME": str(home), "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_PROFILE": "work",
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
        "PYTHONPATH": os.pathsep.join([str(guard), str(REPO / "sam-app" / "src"), str(REPO)]),
        "NET_GUARD_LOG": str(log), "NET_GUARD_DIR": str(guard),
        "WORKSHOP_STATE_FILE": str(tmp_path / "state.json"),
    })
    done = subprocess.run([sys.executable, "-c", FLOW], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    harness.count("requests", 8)
    assert "FLOW ready" in done.stdout, (done.stdout[-2000:], done.stderr[-4000:])
    loaded = set((tmp_path / "net.log.loaded").read_text().split())
    assert len(loaded) >= 4, "the guard must be loaded by the flow, moto and the Lambda environments"
    assert "GUARD works" in done.stdout
    attempts = log.read_text().splitlines()
    assert len(attempts) == 1 and "sts.amazonaws.com" in attempts[0], attempts[:20]  # only the control
