"""moto's process, seen from the parent: start it, wait until it listens, stop it."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from localcloud.errors import CloudError

__all__ = ["MotoProcess"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class MotoProcess:
    """moto in server mode in a child process of its own (``moto_server``), on a free port of 127.0.0.1."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localcloud.endpoint.moto_server", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # the child imports this package from where this process has it, whatever its own path
            env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))},
            start_new_session=True,  # a Ctrl-C in a terminal goes to `up`, which stops moto itself
        )
        self.port: int | None = None

    def wait_ready(self, timeout: float = 30.0) -> int:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        fd = self.process.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 256)
            if not chunk:
                raise CloudError(f"moto did not start (exit code {self.process.wait()}); see the error above")
            line += chunk
            if b"\n" in line:
                match = re.search(rb"MOTO_READY (\d+)", line)
                if match:
                    self.port = int(match.group(1))
                    return self.port
        self.stop()
        raise CloudError(f"moto did not start within {timeout:.0f} s")

    def stop(self) -> None:
        process = self.process
        if process.poll() is None:
            try:
                if process.stdin:
                    process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(3)
        for pipe in (process.stdout, process.stdin):
            try:
                if pipe:
                    pipe.close()
            except OSError:
                pass
