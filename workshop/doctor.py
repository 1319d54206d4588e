"""``make doctor`` (``python -m workshop doctor``): the first five minutes of a meetup, in one command.

Each check answers ``None`` (fine) or one line that says what is wrong and what to do about it. The
doctor prints a line per check (``ok`` or ``FIX``) and exits 1 if any check found a problem, so a
presenter can ask the room "who sees FIX?" before the first notebook.

==========================  =====================================================================
check                       passes when
==========================  =====================================================================
``python``                  this Python is 3.13 (Lambda's ``python3.13``), and ``sam build`` finds one
``disk``                    the repository's disk has room for the venv, builds and a wheelhouse
``memory``                  there is memory left for moto, the functions' processes and a kernel
``ports``                   the ports the workshop listens on are free (API, JupyterLab, debugpy)
``packages``                every pin of requirements.txt is installed at its version and imports
``local cloud``             a local cloud starts on free ports and its API answers ``GET /ping``
``sam build wheels``        the arm64 wheels ``sam build`` packages are in the wheelhouse, in pip's
                            cache, or PyPI answers
==========================  =====================================================================
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from workshop import config, wheelhouse

__all__ = ["CHECKS", "main", "run"]

MIN_FREE_DISK_GB = 3.0  # the venv (~1.2 GB), sam build's output and caches, room for a wheelhouse
MIN_FREE_MEMORY_GB = 1.5  # moto, a dozen execution environments, a kernel and a browser tab
JUPYTER_PORT = 8888
DEBUG_PORT = 5678  # debugpy's, as in .vscode/launch.json and `python -m workshop debug`

Check = Callable[[], str | None]


def check_python(version: tuple[int, ...] | None = None, which: Callable[[str, str], str | None] = shutil.which) -> str | None:
    version = tuple(version or sys.version_info[:3])
    if version[:2] != (3, 13):
        return (f"Python {'.'.join(map(str, version))} runs this, the workshop needs 3.13 (Lambda's python3.13): "
                "`pyenv install 3.13`, or the conda route in README.md, then `rm -rf .venv && make lab`")
    path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    if which("python3.13", path=path) is None:
        return "no `python3.13` on PATH for `sam build`: run it through `make build` or the notebook (they put .venv/bin first)"
    return None


def check_disk(root: Path | None = None, minimum_gb: float = MIN_FREE_DISK_GB) -> str | None:
    root = root or config.repo_root()
    free = shutil.disk_usage(root).free / 1e9
    if free < minimum_gb:
        return (f"{free:.1f} GB free on the disk of {root}, the workshop needs {minimum_gb:g} GB: "
                "free some space (`make clean` removes builds; `pip cache purge` the download cache)")
    return None


def check_memory(minimum_gb: float = MIN_FREE_MEMORY_GB) -> str | None:
    import psutil

    available = psutil.virtual_memory().available / 1e9
    if available < minimum_gb:
        return (f"{available:.1f} GB of memory available, the notebooks need about {minimum_gb:g} GB: "
                "close other programs (a browser with many tabs, Docker) and run `make doctor` again")
    return None


def _who_listens(port: int) -> str:
    try:
        import psutil

        for connection in psutil.net_connections("tcp"):
            if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
                if connection.pid:
                    return f" by {psutil.Process(connection.pid).name()} (pid {connection.pid})"
    except Exception:  # noqa: BLE001 - who holds it is a courtesy; that it is busy is the finding
        pass
    return ""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: Iterable[tuple[int, str]] | None = None) -> str | None:
    if ports is None:
        ports = [(config.api_port(), "the local API of `python -m workshop up` (set WORKSHOP_API_PORT=3001 to move it)"),
                 (JUPYTER_PORT, 'JupyterLab (or `make lab JUPYTER_ARGS="--port 8890"`)'),
                 (DEBUG_PORT, "debugpy (or `python -m workshop debug FUNCTION --port 5679`)")]
    busy = [f"port {port} is in use{_who_listens(port)}, needed by {what}" for port, what in ports if not port_is_free(port)]
    if busy:
        return "; ".join(busy) + ": stop what holds it (`python -m workshop down` if it is ours)"
    return None


def _pins(requirements: Path) -> list[tuple[str, str]]:
    pins = []
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;#]+)", line.strip())
        if match:
            pins.append((match.group(1), match.group(3)))
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _importable_modules(distribution: str, providers: dict[str, list[str]]) -> list[str]:
    """The distribution's top-level modules that Python can find (a wheel's data folders are not)."""
    names = sorted(module for module, dists in providers.items()
                   if module.isidentifier() and not module.startswith("_")
                   and _normal(distribution) in {_normal(d) for d in dists})
    return [name for name in names if importlib.util.find_spec(name) is not None]


def check_packages(requirements: Path | None = None) -> str | None:
    requirements = requirements or config.repo_root() / "requirements.txt"
    wrong = []
    providers = importlib.metadata.packages_distributions()
    for name, pinned in _pins(requirements):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{name} is missing")
            continue
        if installed != pinned:
            wrong.append(f"{name} is {installed}, pinned {pinned}")
            continue
        for module in _importable_modules(name, providers):
            try:
                importlib.import_module(module)
            except Exception as error:  # noqa: BLE001 - any failure to import is the finding
                wrong.append(f"{name} does not import ({module}: {type(error).__name__}: {error})")
                break
    if wrong:
        return ", ".join(wrong) + ": run `make lab` again (it reinstalls when requirements.txt is newer) or " \
                                  "`.venv/bin/pip install -r requirements.txt`"
    return None


def check_local_cloud(timeout: float = 10.0) -> str | None:
    import requests

    from localcloud import CloudError, LocalCloud

    cloud = LocalCloud(**{**config.local_cloud_options(), "port": 0, "control": False})
    try:
        cloud.start()
        answer = requests.get(cloud.api_url + "ping", timeout=timeout)
        if answer.status_code != 200 or answer.json() != {"ok": True}:
            return f"the local cloud started but GET /ping answered {answer.status_code} {answer.text[:80]!r}: " \
                   "run `WORKSHOP_DEBUG=1 python -m workshop up` to see why"
    except CloudError as error:
        return f"the local cloud did not start ({error}): run `python -m workshop up` to see the whole story"
    except requests.RequestException as error:
        return f"the local cloud started but GET /ping failed ({type(error).__name__}): is a proxy set for 127.0.0.1? " \
               "`export NO_PROXY=127.0.0.1,localhost`"
    finally:
        cloud.stop()
    return None


def check_sam_build_wheels(root: Path | None = None, timeout: float = 90.0) -> str | None:
    """sam build (python3.13, arm64) has pip download manylinux aarch64 wheels: the same download, with the same
    settings (the wheelhouse alone when there is one; else pip's cache, then PyPI)."""
    root = root or config.repo_root()
    requirements = root / "sam-app" / "src" / "requirements.txt"
    offline = wheelhouse.pip_environment(root)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--retries", "1",
                 "--timeout", "15", "--dest", scratch, *wheelhouse.lambda_platform_args(), "-r", str(requirements)],
                capture_output=True, text=True, timeout=timeout, env={**os.environ, **offline})
        except subprocess.TimeoutExpired:
            done = None
    if done is not None and done.returncode == 0:
        return None
    if offline:
        return (f"`sam build` cannot get its arm64 wheels: the wheelhouse {offline['PIP_FIND_LINKS']} lacks some "
                "(run `make wheelhouse` again where there is a network)")
    return ("`sam build` cannot get its arm64 wheels: no wheelhouse and PyPI did not answer "
            "(run `make wheelhouse` where there is a network, or copy the presenter's wheelhouse/ folder here)")


CHECKS: dict[str, Check] = {
    "python": check_python,
    "disk": check_disk,
    "memory": check_memory,
    "ports": check_ports,
    "packages": check_packages,
    "local cloud": check_local_cloud,
    "sam build wheels": check_sam_build_wheels,
}


def run(checks: dict[str, Check] | None = None, out=None) -> int:
    """Run the checks, print one line each, and answer the exit code: 0 all fine, 1 something to fix."""
    out = out or sys.stdout
    problems = 0
    for name, check in (checks or CHECKS).items():
        started = time.perf_counter()
        try:
            problem = check()
        except Exception as error:  # noqa: BLE001 - a check that breaks is a problem to report, not a traceback
            problem = f"the check itself failed ({type(error).__name__}: {error}): set WORKSHOP_DEBUG=1 and rerun"
            if os.environ.get("WORKSHOP_DEBUG"):
                raise
        took = time.perf_counter() - started
        if problem is None:
            print(f"  ok   {name:<17} ({took:.1f} s)", file=out, flush=True)
        else:
            problems += 1
            print(f"  FIX  {name:<17} {problem}", file=out, flush=True)
    print(f"{problems} problem{'s' if problems != 1 else ''} found" if problems else "Ready for the workshop.",
          file=out, flush=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    return run()
