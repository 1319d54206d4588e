"""What the notebooks import: the target (local cloud or AWS), a client for the app's API, and pictures.

A notebook starts with::

    from workshop import lab
    cloud = lab.local_cloud()            # one per kernel, stopped when the kernel stops
    api = lab.signed_in(cloud, "ada")    # an ApiClient with Ada's Cognito ID token

and then talks HTTP to the app as any client would: ``api.upload(photo)``, ``api.thumbnail(...)``.
"""

from __future__ import annotations

import atexit
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import requests

from workshop import config

PASSWORD = "Passw0rd!"  # the workshop's throwaway local password; the local pool lives in memory only
_cloud = None
_cloud_options: dict[str, Any] = {}  # what _cloud was started with


class ExerciseNotDone(AssertionError):
    """Raised by an exercise's check cell until its TODO is done."""


def check(condition: bool, message: str) -> None:
    """An exercise check: passes quietly, or fails with a message that says what is still missing."""
    if not condition:
        raise ExerciseNotDone(f"Not yet: {message}")
    print("✔ Success")


def target() -> str:
    """Where the notebooks run the app: "local" (default) or "aws" (WORKSHOP_TARGET=aws)."""
    return "aws" if config.target_is_aws() else "local"


def local_cloud(**options: Any):
    """The kernel's local cloud, started on first use (ports chosen by the OS) and stopped at exit.

    ``options`` go to ``localcloud.LocalCloud`` (e.g. ``dispatch="stream"``); asking again with
    different options restarts it.
    """
    global _cloud, _cloud_options
    from localcloud import LocalCloud

    if _cloud is not None and _cloud.running and _cloud_options == options:
        return _cloud
    if _cloud is not None:
        _cloud.stop()
    _cloud = LocalCloud(**{**config.local_cloud_options(), "port": 0, "control": False, **options})
    _cloud_options = options
    _cloud.start()
    atexit.register(_cloud.stop)
    return _cloud


def signed_in(cloud, name: str, password: str = PASSWORD) -> "ApiClient":
    """An API client for user ``name``, added to the local user pool if new."""
    from localcloud import CloudError

    try:
        cloud.add_user(name, password)
    except CloudError as error:
        if "already exists" not in str(error):
            raise
    return ApiClient(cloud.api_url, cloud.token(name, password))


class ApiClient:
    """The app's API over HTTP, as a learner's client calls it."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30):
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request: (status, parsed JSON body)."""
        headers = {"Authorization": self.token} if self.token else {}
        answer = self.session.request(method, self.base_url + path.lstrip("/"), json=body, headers=headers,
                                      timeout=self.timeout)
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, answer.text

    def upload(self, photo: bytes, content_type: str = "image/jpeg") -> str:
        """POST /photos, then the presigned POST to S3 (a form: its fields, then the file). Returns the photo id."""
        status, body = self.call("POST", "photos", {"content_type": content_type})
        if status != 201:
            raise RuntimeError(f"POST /photos answered {status}: {body}")
        upload = body["upload"]
        stored = requests.post(upload["url"], data=upload["fields"], files={"file": ("photo", photo, content_type)},
                               timeout=self.timeout)
        if stored.status_code not in (200, 201, 204):
            raise RuntimeError(f"S3 refused the upload ({stored.status_code}): {stored.text[:300]}")
        return body["photo_id"]

    def wait(self, path: str, timeout: float = 60) -> dict:
        """Poll GET path until its status is no longer "pending"."""
        return poll(lambda: self.call("GET", path)[1], lambda body: body.get("status") != "pending", timeout)

    def thumbnail(self, photo_id: str, width: int, height: int, format: str) -> tuple[int, dict]:
        return self.call("POST", "thumbnails", {"photo_id": photo_id, "width": width, "height": height, "format": format})

    def download(self, url: str) -> bytes:
        answer = requests.get(url, timeout=self.timeout)
        answer.raise_for_status()
        return answer.content


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not done after {timeout:.0f} s: {value}")
        time.sleep(interval)


def sample_photo() -> bytes:
    """A real photo shipped with matplotlib: Grace Hopper, 512x600 JPEG."""
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()


def show(images: dict[str, bytes] | Iterable[tuple[str, bytes]], size: float = 3.0) -> None:
    """Draw images side by side at their relative sizes, each titled (e.g. "PNG 128x128")."""
    import matplotlib.pyplot as plt
    from PIL import Image

    items = list(images.items() if isinstance(images, dict) else images)
    decoded = [(title, Image.open(io.BytesIO(data)) if isinstance(data, bytes) else data) for title, data in items]
    widest = max(image.width for _, image in decoded)
    figure, axes = plt.subplots(1, len(decoded), figsize=(size * len(decoded), size), squeeze=False)
    for axis, (title, image) in zip(axes[0], decoded):
        axis.imshow(image)
        axis.set_title(title, fontsize=9)
        axis.set_xlim(0, widest)  # keep relative sizes visible
        axis.set_ylim(max(i.height for _, i in decoded), 0)
        axis.axis("off")
    plt.tight_layout()
    plt.show()


def sam(*args: str, cwd: Path | None = None, check: bool = False,
        aws_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run SAM CLI (the one installed beside this Python) in sam-app/, without telemetry.

    ``aws_env`` (e.g. ``cloud.environment()``) replaces every ``AWS_*`` variable of this process.
    """
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "SAM_CLI_TELEMETRY": "0"}
    from workshop.wheelhouse import pip_environment  # a wheelhouse at the root: sam build's pip needs no network
    env.update(pip_environment())
    if aws_env is not None:
        env = {**{k: v for k, v in env.items() if not k.startswith("AWS_")}, **aws_env}
    env.setdefault("AWS_DEFAULT_REGION", config.region())
    return subprocess.run([str(Path(bin_dir) / "sam"), *args], cwd=cwd or config.repo_root() / "sam-app",
                          env=env, capture_output=True, text=True, check=check)
