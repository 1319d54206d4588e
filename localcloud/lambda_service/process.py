"""An awslambdaric process seen from outside: its command line, its memory, its exit in Lambda's words, its output.

Linux and macOS (not Windows: process groups); memory is read from ``/proc`` where there is one,
else with psutil.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping

__all__ = ["LogPipe", "command", "exit_description", "kill_group", "peak_rss_bytes", "ric_version",
           "rss_bytes", "runtime_dir", "spawn"]

_MAX_LOG_LINE = 256 * 1024  # CloudWatch's event size: a longer line without "\n" is cut there
_MAX_PENDING_LINES = 100_000  # lines kept between invocations (a chatty background thread)

_HAVE_PROC = os.path.exists("/proc/self/statm")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# Go's names for signals: Lambda's init is written in Go ("signal: killed").
_SIGNAL_NAMES = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGPIPE: "broken pipe",
}


def command(python: str, handler: str, debug: tuple[int, bool] | None = None) -> list[str]:
    """``python -m awslambdaric HANDLER``, the managed runtimes' bootstrap; under debugpy with ``debug`` (port, wait).

    Under debugpy, frozen modules are off, or debugpy warns and misses breakpoints.
    """
    if debug is None:
        return [python, "-m", "awslambdaric", handler]
    port, wait = debug
    return [python, "-Xfrozen_modules=off", "-m", "debugpy", "--listen", f"127.0.0.1:{port}",
            *(["--wait-for-client"] if wait else []), "-m", "awslambdaric", handler]


def spawn(command: list[str], *, cwd: str, env: Mapping[str, str],
          name: str) -> tuple[subprocess.Popen, LogPipe]:
    """Start ``command`` in its own process group, its stdout and stderr in one ``LogPipe``."""
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=w,
            stderr=w,
            start_new_session=True,  # its own process group: killpg gets its children too
            close_fds=True,
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return proc, LogPipe(r, name)


def kill_group(proc: subprocess.Popen) -> bool:
    """SIGKILL the process and its group, and reap it; False if it did not die within 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state)
        return False
    return True


def exit_description(returncode: int | None) -> str:
    """Lambda's wording for a runtime process that went away."""
    if returncode is None:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        sig = -returncode
        try:
            name = _SIGNAL_NAMES.get(signal.Signals(sig), signal.Signals(sig).name.lower())
        except ValueError:
            name = f"signal {sig}"
        return f"Runtime exited with error: signal: {name}"
    if returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: exit status {returncode}"


def rss_bytes(pid: int) -> int | None:
    """The process's resident set size now (None if it is gone)."""
    if _HAVE_PROC:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return None
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except Exception:  # noqa: BLE001 - gone, or no psutil
        return None


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM (the peak RSS) on Linux; the current RSS elsewhere."""
    if _HAVE_PROC:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            return None
        return None
    return rss_bytes(pid)


def runtime_dir(python: str) -> str | None:
    """awslambdaric's folder (``LAMBDA_RUNTIME_DIR``), when ``python`` is this interpreter."""
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        return None
    try:
        spec = importlib.util.find_spec("awslambdaric")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(list(spec.submodule_search_locations)[0])


def ric_version() -> str:
    """awslambdaric's version, as the INIT_START line names it."""
    try:
        from importlib.metadata import version

        return version("awslambdaric")
    except Exception:  # noqa: BLE001
        return "unknown"


class LogPipe:
    """Reads an environment's stdout+stderr pipe into lines.

    A daemon thread reads whenever data arrives; :meth:`take` reads what is still in the pipe
    under the same lock, so that everything the process wrote before it answered an invocation
    is in that invocation's lines (the process writes synchronously, then POSTs).
    """

    def __init__(self, fd: int, name: str) -> None:
        os.set_blocking(fd, False)
        self._fd: int | None = fd
        self._lock = threading.Lock()
        self._partial = b""
        self._lines: list[str] = []
        self._stop = False
        threading.Thread(target=self._run, name=f"lambda-logs-{name}", daemon=True).start()

    @staticmethod
    def _clean(raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        # awslambdaric joins the lines of an error's traceback with "\r" so that they make one
        # log event; CloudWatch shows them as lines of that event.
        return text.replace("\r", "\n")

    def _read_locked(self) -> bool:
        """Read what is available; False at end of file."""
        if self._fd is None:
            return False
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self._close_locked()
                return False
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            self._lines.extend(self._clean(line) for line in complete)
            while len(self._partial) > _MAX_LOG_LINE:
                self._lines.append(self._clean(self._partial[:_MAX_LOG_LINE]))
                self._partial = self._partial[_MAX_LOG_LINE:]
            if len(self._lines) > _MAX_PENDING_LINES:
                del self._lines[: len(self._lines) - _MAX_PENDING_LINES]

    def _close_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            with self._lock:
                if self._fd is None:
                    return
                sel.register(self._fd, selectors.EVENT_READ)
            while True:
                sel.select(0.5)
                with self._lock:
                    if self._stop:
                        self._read_locked()
                        self._close_locked()
                        return
                    if not self._read_locked():
                        return
        finally:
            sel.close()

    def take(self, flush_partial: bool = False) -> list[str]:
        """The lines read since the last take (with ``flush_partial``, an unfinished last line too)."""
        with self._lock:
            self._read_locked()
            if flush_partial and self._partial:
                self._lines.append(self._clean(self._partial))
                self._partial = b""
            lines, self._lines = self._lines, []
            return lines

    def close(self) -> None:
        """Stop the reader (it drains and closes the pipe within half a second)."""
        with self._lock:
            self._stop = True
