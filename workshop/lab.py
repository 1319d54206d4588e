"""What the notebooks import: the target (local cloud or AWS), a client for the app's API, and pictures.

A notebook starts with::

    from workshop import lab
    cloud = lab.target()                 # the local cloud (default) or your AWS account (WORKSHOP_TARGET=aws)
    api = cloud.signed_in("ada")         # an ApiClient with Ada's Cognito ID token

and then talks HTTP to the app as any client would: ``api.upload(photo)``, ``api.thumbnail(...)``.

A cell that only a laptop can run (attach a debugger to a local process, inject a fault) starts with
``%%local_only <what to do on AWS instead>``: on AWS it prints that line and runs nothing.
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
_target = None
LOCAL_ONLY = "🖥️ local only"  # the one marker of cells that run on the local cloud only


class ExerciseNotDone(AssertionError):
    """Raised by an exercise's check cell until its TODO is done."""


def check(condition: bool, message: str) -> None:
    """An exercise check: passes quietly, or fails with a message that says what is still missing."""
    if not condition:
        raise ExerciseNotDone(f"Not yet: {message}")
    print("✔ Success")


def target(**options: Any):
    """The kernel's target (a ``workshop.target.Target``): the local cloud, started on first use, or, with
    ``WORKSHOP_TARGET=aws``, your AWS account (profile and region), where the app's stack is deployed with
    ``sam build`` and ``sam deploy`` if it is not there yet. ``options`` go to the local cloud."""
    global _target
    from workshop.target import aws_target, local_target

    if not config.target_is_aws():
        cloud = local_cloud(**options)
        if _target is None or _target.local is not cloud:
            _target = local_target(cloud)
        return _target
    if _target is None:
        _target = aws_target()
        where = _target.endpoint_url or "AWS"
        print(f"target aws: account {_target.account()}, region {_target.region}, stack {_target.stack_name} "
              f"({where})")
        if not _target.stack_exists():
            deploy_app(_target)
    return _target


def deploy_app(target, parameters: Mapping[str, str] | None = None) -> None:
    """``sam build`` then ``sam deploy`` of sam-app/ to ``target`` (what notebook 07 teaches), with progress."""
    overrides = " ".join(f"{k}={v}" for k, v in (parameters or {}).items())
    print(f"the stack {target.stack_name} is not deployed: sam build && sam deploy (a few minutes on AWS)")
    began = time.monotonic()
    target.sam("build")
    print(f"  built in {time.monotonic() - began:.0f} s; deploying")
    target.sam("deploy", "--stack-name", target.stack_name, "--no-confirm-changeset", "--no-fail-on-empty-changeset",
               *(["--parameter-overrides", overrides] if overrides else []), timeout=1800)
    target.refresh()
    print(f"  deployed in {time.monotonic() - began:.0f} s: {target.api_url}")


def is_local() -> bool:
    """True on the local cloud (the default), False with ``WORKSHOP_TARGET=aws``."""
    return not config.target_is_aws()


def _local_only(line: str, cell: str) -> None:
    """``%%local_only <what to do on AWS>``: runs the cell on the local cloud; on AWS prints one line."""
    from IPython import get_ipython

    if not is_local():
        print(f"{LOCAL_ONLY}: skipped on AWS. {line.strip()}")
        return
    print(LOCAL_ONLY)
    result = get_ipython().run_cell(cell)
    result.raise_error()


def _register_magic() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.register_magic_function(_local_only, "cell", "local_only")


_register_magic()


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
    """An API client for user ``name`` of ``cloud`` (a target, or a ``LocalCloud``), added to its user pool if new."""
    if hasattr(cloud, "signed_in"):
        return cloud.signed_in(name, password)
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


def sam(*args: str, cwd: Path | None = None, check: bool = False, timeout: float = 600,
        aws_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run SAM CLI (the one installed beside this Python) in sam-app/, without telemetry, for at most
    ``timeout`` seconds. ``check=True``: a non-zero exit raises ``CommandFailed`` with SAM's stderr.

    ``aws_env`` (e.g. ``cloud.environment()``) replaces every ``AWS_*`` variable of this process. Commands
    that need no account (build, validate, generate-event) get a region only if none is set.
    """
    from workshop.target import CommandFailed, text_of

    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "SAM_CLI_TELEMETRY": "0"}
    from workshop.wheelhouse import pip_environment  # a wheelhouse at the root: sam build's pip needs no network
    env.update(pip_environment())
    if aws_env is not None:
        env = {**{k: v for k, v in env.items() if not k.startswith("AWS_")}, **aws_env}
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or env.get("AWS_PROFILE")):
        env["AWS_DEFAULT_REGION"] = config.region()
    command = [str(Path(bin_dir) / "sam"), *args]
    try:
        done = subprocess.run(command, cwd=cwd or config.repo_root() / "sam-app", env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise CommandFailed(command, None, text_of(error.stderr)) from None
    if check and done.returncode != 0:
        raise CommandFailed(command, done.returncode, done.stderr)
    return done
