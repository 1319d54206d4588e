"""A wheelhouse: every pinned wheel in one folder, so a room with bad Wi-Fi installs and builds with no network.

``make wheelhouse`` (``python -m workshop.wheelhouse``) fills ``wheelhouse/`` with

* every wheel ``requirements.txt`` resolves to, for the laptops a room has: Linux x86_64 and aarch64,
  macOS arm64 and x86_64 (and this machine's, with wheels built here for pins published only as sdists);
* the manylinux aarch64 wheels that ``sam build`` packages for the functions (python3.13, arm64).

A presenter copies the folder to a USB stick; a learner drops it at the repository's root. From then on
``make lab``, ``make test`` and ``sam build`` (through ``make build`` or the notebooks' ``lab.sam``)
install from it alone: :func:`pip_environment` gives the pip settings that say so (pip reads
``PIP_NO_INDEX`` and ``PIP_FIND_LINKS`` from the environment, and SAM CLI's pip inherits them).
"""

from __future__ import annotations

import argparse
import os
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


def _pip(*args: str) -> bool:
    command = [sys.executable, "-m", "pip", *args]
    print("  $ pip " + " ".join(args), flush=True)
    # the index, not another folder of this machine, so that the wheelhouse holds everything
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_NO_INDEX", "PIP_FIND_LINKS")}
    return subprocess.run(command, env=env).returncode == 0


def fill(dest: Path, requirements: Path, lambda_requirements: Path | None, platforms: dict[str, list[str]]) -> list[str]:
    """Download into ``dest``; answers the platforms that failed (empty: all there)."""
    dest.mkdir(parents=True, exist_ok=True)
    common = ["--disable-pip-version-check", "--quiet", "--find-links", str(dest)]
    failed = []
    print(f"[1/{len(platforms) + 2}] this machine's wheels (and wheels built here for sdist-only pins)", flush=True)
    if not _pip("wheel", *common, "--wheel-dir", str(dest), "-r", str(requirements)):
        failed.append("this machine")
    for step, (name, tags) in enumerate(platforms.items(), start=2):
        print(f"[{step}/{len(platforms) + 2}] {name}", flush=True)
        if not _pip("download", *common, "--dest", str(dest), "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                    "--implementation", "cp", *[f"--platform={t}" for t in tags], "-r", str(requirements)):
            failed.append(name)
    if lambda_requirements is not None:
        print(f"[{len(platforms) + 2}/{len(platforms) + 2}] what `sam build` packages (python3.13, arm64)", flush=True)
        if not _pip("download", *common, "--dest", str(dest), *lambda_platform_args(), "-r", str(lambda_requirements)):
            failed.append("sam build (arm64)")
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
    wheels = list(args.dest.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 1e6
    print(f"{len(wheels)} wheels, {size:.0f} MB in {args.dest}, in {time.perf_counter() - started:.0f} s", flush=True)
    if failed:
        print(f"not complete for: {', '.join(failed)} (see pip's messages above)", file=sys.stderr)
        return 1
    print("Copy the folder to the repository's root on another laptop: `make lab` then installs with no network.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
