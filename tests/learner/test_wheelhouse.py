"""The wheelhouse: pip installs the pinned wheels from a folder with no index at all, and everything is told to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.learner.conftest import REPO
from workshop import wheelhouse

#: a few pins of requirements.txt, one with native code, and their dependencies
PINS = ("tqdm", "PyYAML", "requests")


def _pinned(names: tuple[str, ...]) -> list[str]:
    text = (REPO / "requirements.txt").read_text()
    return [re.search(rf"^({re.escape(n)}(?:\[[^\]]*\])?==\S+)", text, re.M | re.I).group(1) for n in names]


def _clean_pip_env(**extra: str) -> dict[str, str]:
    """No pip setting of this machine (its find-links, its indexes), and a dead proxy: a download would fail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and "PROXY" not in k.upper()}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


@pytest.fixture(scope="module")
def small_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few pins' wheels: from the repository's wheelhouse when there is one, else downloaded once from PyPI."""
    dest = tmp_path_factory.mktemp("wheelhouse")
    source = wheelhouse.folder(REPO)
    if wheelhouse.has_wheels(source):
        args = ["--no-index", "--find-links", str(source)]
    else:
        args = []
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_NO_INDEX", "PIP_FIND_LINKS")}
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(dest),
                           *args, *_pinned(PINS)], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"no wheelhouse/ and PyPI did not answer, so there are no wheels to install offline: {done.stderr[-300:]}")
    return dest


def test_a_fresh_venv_installs_the_pins_from_the_wheelhouse_with_no_index(small_wheelhouse: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)  # pip from ensurepip: offline
    python = str(venv / "bin" / "python")
    monkeypatch.setenv("WORKSHOP_WHEELHOUSE", str(small_wheelhouse))
    env = _clean_pip_env(**wheelhouse.pip_environment())  # what make and lab.sam give pip
    done = subprocess.run([python, "-m", "pip", "install", *_pinned(PINS)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    versions = subprocess.run([python, "-c", "import importlib.metadata as m, yaml, tqdm, requests; "
                               "print(' '.join(f'{d}=={m.version(d)}' for d in ('tqdm', 'PyYAML', 'requests')))"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert versions == _pinned(PINS)
    # and nothing else could have come from anywhere: a package not in the folder is not found
    missing = subprocess.run([python, "-m", "pip", "install", "six"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode != 0 and "No matching distribution found for six" in missing.stderr


def test_only_a_folder_with_wheels_makes_pip_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_WHEELHOUSE", str(tmp_path))
    assert wheelhouse.pip_environment() == {}
    (tmp_path / "tqdm-4.70.1-py3-none-any.whl").write_bytes(b"")
    assert wheelhouse.pip_environment() == {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}


def test_the_notebooks_sam_runs_offline_when_there_is_a_wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workshop import lab

    seen = {}
    monkeypatch.setattr(lab.subprocess, "run", lambda command, **kwargs: seen.update(kwargs["env"]))
    monkeypatch.setenv("WORKSHOP_WHEELHOUSE", str(tmp_path))
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    lab.sam("build")
    assert "PIP_NO_INDEX" not in seen
    (tmp_path / "pillow-13.0.0-cp313-cp313-manylinux_2_28_aarch64.whl").write_bytes(b"")
    lab.sam("build")
    assert seen["PIP_NO_INDEX"] == "1" and seen["PIP_FIND_LINKS"] == str(tmp_path)


def test_the_makefile_makes_pip_offline_when_there_is_a_wheelhouse(tmp_path: Path) -> None:
    show = ["make", "-s", "-C", str(REPO), "--eval", "show-pip: ; @echo \"[$$PIP_NO_INDEX] [$$PIP_FIND_LINKS]\"", "show-pip"]
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_NO_INDEX", "PIP_FIND_LINKS", "MAKEFLAGS")}
    assert subprocess.run([*show, f"WHEELHOUSE={tmp_path}"], capture_output=True, text=True, env=env).stdout == "[] []\n"
    (tmp_path / "tqdm-4.70.1-py3-none-any.whl").write_bytes(b"")
    out = subprocess.run([*show, f"WHEELHOUSE={tmp_path}"], capture_output=True, text=True, env=env).stdout
    assert out == f"[1] [{tmp_path}]\n"
