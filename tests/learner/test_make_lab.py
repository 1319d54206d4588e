"""`make lab` as a learner meets it: rooted at the repository, options passed, root allowed, notebooks open clean."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from tests.learner.conftest import REPO, Browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[str, str, list[str]]]:
    port, token = _free_port(), secrets.token_hex(16)
    log = REPO / ".workshop" / f"lab-test-{port}.log"
    log.parent.mkdir(exist_ok=True)
    args = f"--port {port} --no-browser --ServerApp.token={token} --ServerApp.ip=127.0.0.1"
    with log.open("w") as out:
        process = subprocess.Popen(["make", "-s", "lab", f"JUPYTER_ARGS={args}"], cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(base + "api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert process.poll() is None, log.read_text()
        yield base, token, log.read_text().splitlines()
    finally:
        try:  # the server's own shutdown stops its kernels too
            requests.post(base + "api/shutdown", params={"token": token}, timeout=10)
        except requests.RequestException:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.unlink(missing_ok=True)


def test_lab_is_rooted_at_the_repository_with_the_options_passed(lab: tuple[str, str, list[str]]) -> None:
    base, token, output = lab  # the port and the token are the ones JUPYTER_ARGS gave: it answered on them
    listing = requests.get(base + "api/contents/", params={"token": token}, timeout=10).json()
    assert {"notebooks", "exercises", "solutions"} <= {item["name"] for item in listing["content"]}
    exercise = requests.get(base + "api/contents/exercises/00_welcome.ipynb", params={"token": token, "content": 0}, timeout=10)
    assert exercise.status_code == 200
    if os.geteuid() == 0:
        assert any("Running as root" in line for line in output), output
    assert not any("Running as root is not recommended" in line for line in output)


def test_a_stored_notebook_opens_clean_and_its_exercise_link_opens(lab: tuple[str, str, list[str]], chromium: Browser) -> None:
    base, token, _ = lab
    chromium.open(f"{base}lab/tree/notebooks/00_welcome.ipynb?token={token}&reset")
    assert chromium.wait("document.querySelector('.jp-NotebookPanel .jp-Cell')", timeout=60), "the notebook did not open"
    # the kernel connects and answers; a stored kernelspec that differs from the installed one marks the tab dirty
    assert chromium.wait("document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')", timeout=90), \
        "the kernel did not start"
    time.sleep(2)
    dirty = chromium.driver.execute_script("return document.querySelectorAll('.lm-TabBar-tab.jp-mod-dirty').length")
    assert dirty == 0, "the stored notebook shows unsaved changes on opening"
    chromium.open(f"{base}lab/tree/exercises/00_welcome.ipynb?token={token}")
    assert chromium.wait("document.querySelector('.jp-NotebookPanel .jp-Cell')", timeout=60)
    page = chromium.driver.page_source
    assert "Could not find path" not in page and re.search(r"00_welcome\.ipynb", page)
