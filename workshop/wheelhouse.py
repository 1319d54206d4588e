"""A wheelhouse: every pinned wheel in one folder, so a room with bad Wi-Fi installs and builds with no network.

``make wheelhouse`` (``python -m workshop.wheelhouse``) fills ``wheelhouse/`` with

* every wheel ``requirements.txt`` resolves to, for the laptops a room has: Linux x86_64 and aarch64,
  macOS arm64 and x86_64 (and this machine's, with wheels built here for pins published only as sdists; a
  pin with no wheel for a platform, as awslambdaric for macOS, is named: pip builds it there from its sdist);
* the manylinux aarch64 wheels that ``sam build`` packages for the functions (python3.13, arm64).

A presenter copies the folder to a USB stick; a learner drops it at the repository's root. From then on
``make lab``, ``make test`` and ``sam build`` (through ``make build`` or the notebooks' ``lab.sam``)
install from it alone: :func:`pip_environment` gives the pip settings that say so (pip reads
``PIP_NO_INDEX`` and ``PIP_FIND_LINKS`` from the environment, and SAM CLI's pip inherits them).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["PLATFORMS", "folder", "has_wheels", "lambda_platform_args", "main", "pip_environment"]

PYTHON_VERSION = "3.13"
#: pip's --platform values per laptop kind; pip widens each macosx and manylinux2014 tag to the older ones
#: (https://pip.pypa.io/en/stable/cli/pip_download/), the perennial manylinux_2_x tags are listed as published.
PLATFORMS = {
    "Linux x86_64": ["manylinux2014_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"],
    "Linux aarch64": ["manylinux2014_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"],
    "macOS arm64": ["macosx_14_0_arm64"],
    "macOS x86_64": ["macosx_14_0_x86_64"],
}


def folder(root: Path | None = None) -> Path:
    """The wheelhouse: ``WORKSHOP_WHEELHOUSE``, default ``<repo>/wheelhouse``."""
    value = os.environ.get("WORKSHOP_WHEELHOUSE", "").strip()
    if value:
        return Path(value).expanduser().resolve()
    from workshop import config

    return (root or config.repo_root()) / "wheelhouse"


def has_wheels(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.whl"))


def pip_environment(root: Path | None = None) -> dict[str, str]:
    """pip's settings for installing from the wheelhouse and nothing else, when there is one ({} when not)."""
    path = folder(root)
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(path)} if has_wheels(path) else {}


def lambda_platform_args() -> list[str]:
    """What `sam build` asks pip for, for a python3.13 arm64 function: manylinux aarch64 CPython wheels."""
    return ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
            *[f"--platform={p}" for p in PLATFORMS["Linux aarch64"]]]


def _pip(*args: str, quiet_failure: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args]
    print("  $ pip " + " ".join(args), flush=True)
    # the index, not another folder of this machine, so that the wheelhouse holds everything
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_NO_INDEX", "PIP_FIND_LINKS")}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0 and not quiet_failure:
        print(done.stderr.strip()[-2000:], file=sys.stderr)
    return done


def _installed_dependencies(name: str) -> list[str]:
    """``name``'s dependencies as this venv resolved them (pinned), for a platform that must build it from source."""
    from importlib import metadata

    from packaging.requirements import Requirement

    pins = []
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            pins.append(f"{requirement.name}=={metadata.version(requirement.name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def _download_for(dest: Path, common: list[str], tags: list[str], requirements: Path) -> tuple[bool, list[str]]:
    """Every wheel of ``requirements`` for one platform; answers whether pip succeeded, and the pins that have no
    wheel there (awslambdaric has none for macOS: pip builds it on the laptop, from PyPI or pip's cache), whose
    dependencies are downloaded all the same."""
    lines = [line for line in requirements.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    no_wheel: list[str] = []
    for _ in range(10):
        pinned = dest / ".requirements-for-platform.txt"
        pinned.write_text("\n".join(lines) + "\n")
        done = _pip("download", *common, "--dest", str(dest), "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                    "--implementation", "cp", *[f"--platform={t}" for t in tags], "-r", str(pinned), quiet_failure=True)
        pinned.unlink()
        if done.returncode == 0:
            return True, no_wheel
        missing = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)==(\S+)", done.stderr)
        if missing is None:
            print(done.stderr.strip()[-2000:], file=sys.stderr)
            return False, no_wheel
        name, version = missing.groups()
        no_wheel.append(f"{name}=={version}")
        key = re.sub(r"[-_.]+", "-", name).lower()
        lines = [line for line in lines if re.sub(r"[-_.]+", "-", re.split(r"[=\[<>!~; ]", line.strip())[0]).lower() != key]
        lines += [pin for pin in _installed_dependencies(name) if pin not in lines]
    return False, no_wheel


def fill(dest: Path, requirements: Path, lambda_requirements: Path | None, platforms: dict[str, list[str]]) -> list[str]:
    """Download into ``dest``; answers the platforms that failed (empty: all there)."""
    dest.mkdir(parents=True, exist_ok=True)
    common = ["--disable-pip-version-check", "--quiet", "--find-links", str(dest)]
    failed, notes = [], []
    steps = len(platforms) + 2
    print(f"[1/{steps}] this machine's wheels (and wheels built here for sdist-only pins)", flush=True)
    if _pip("wheel", *common, "--wheel-dir", str(dest), "-r", str(requirements)).returncode != 0:
        failed.append("this machine")
    for step, (name, tags) in enumerate(platforms.items(), start=2):
        print(f"[{step}/{steps}] {name}", flush=True)
        done, no_wheel = _download_for(dest, common, tags, requirements)
        if not done:
            failed.append(name)
        if no_wheel:
            notes.append(f"{name}: no wheel published for {', '.join(no_wheel)}; pip builds it there from its sdist, "
                         "with a compiler and PyPI (or pip's cache): such a laptop installs it before the room")
    if lambda_requirements is not None:
        print(f"[{steps}/{steps}] what `sam build` packages (python3.13, arm64)", flush=True)
        if _pip("download", *common, "--dest", str(dest), *lambda_platform_args(), "-r", str(lambda_requirements)).returncode != 0:
            failed.append("sam build (arm64)")
    for note in notes:
        print(f"note: {note}", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    from workshop import config

    root = config.repo_root()
    parser = argparse.ArgumentParser(prog="python -m workshop.wheelhouse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=folder(root), help="the folder (default: wheelhouse/)")
    parser.add_argument("--requirements", type=Path, default=root / "requirements.txt")
    parser.add_argument("--lambda-requirements", type=Path, default=root / "sam-app" / "src" / "requirements.txt")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="only these laptop kinds (repeatable; default: all)")
    args = parser.parse_args(argv)
    platforms = {name: PLATFORMS[name] for name in (args.platform or PLATFORMS)}
    started = time.perf_counter()
    failed = fill(args.dest, args.requirements, args.lambda_requirements, platforms)
    files = list(args.dest.glob("*.whl"))
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"{len(files)} wheels, {size:.0f} MB in {args.dest}, in {time.perf_counter() - started:.0f} s", flush=True)
    if failed:
        print(f"not complete for: {', '.join(failed)} (see pip's messages above)", file=sys.stderr)
        return 1
    print("Copy the folder to the repository's root on another laptop: `make lab` then installs with no network.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
