"""One daemon process: started with its output in a log file, watched, stopped.

A ``Daemon`` is either started by us (we hold the ``Popen``) or re-attached
from a pid recorded in the state directory (``python -m regtest down`` runs in
another process than ``up``). Either way ``stop()`` terminates it politely and
then forcefully, and reports instead of raising so teardown can collect every
error.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from regtest.errors import DaemonStartError, PortConflict
from regtest.util import wait_for

T = TypeVar("T")

_ADDRESS_IN_USE = ("address already in use", "address in use", "eaddrinuse")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # Daemons started for a test run die with the test process, even on
    # SIGKILL, instead of lingering on a machine shared with others.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class Daemon:
    """A daemon process whose stdout and stderr go to ``log_path``.

    ``marker`` is a string that must appear in the process's command line
    (its directory); it keeps ``stop()`` from signalling an unrelated process
    that inherited a recycled pid.
    """

    def __init__(self, name: str, argv: list[str], log_path: Path, marker: str) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.marker = marker
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self._stopping = False

    @classmethod
    def attach(cls, name: str, pid: int, log_path: Path, marker: str) -> Daemon:
        """A handle on a daemon started by another process (from the state file)."""
        daemon = cls(name, [], log_path, marker)
        daemon.pid = pid
        return daemon

    def start(self, detached: bool = False) -> None:
        """Start the process. ``detached`` lets it outlive this Python process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            # The death signal follows the thread that forks, so only a daemon
            # started from the main thread is tied to the test process's life.
            tie = not detached and sys.platform == "linux" and threading.current_thread() is threading.main_thread()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=detached,
                preexec_fn=_die_with_parent if tie else None,
            )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        """True while the process runs (a zombie or a recycled pid counts as dead)."""
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{self.pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        return state != b"Z" and self.marker in cmdline

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def check_alive(self, during: str) -> None:
        """Raise DaemonStartError (PortConflict for a taken port) if the process has exited."""
        if self.alive():
            return
        log = self.log_tail()
        message = f"{self.name} exited (code {self.returncode()}) while {during}. Last lines of {self.log_path}:\n{log}"
        if any(marker in log.lower() for marker in _ADDRESS_IN_USE):
            raise PortConflict(message)
        raise DaemonStartError(message)

    def wait_ready(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        """Poll ``predicate`` but fail at once, with the log tail, if the process dies."""

        def check() -> T:
            self.check_alive(f"waiting for {what}")
            return predicate()

        try:
            return wait_for(check, timeout=timeout, what=f"{self.name}: {what}")
        except DaemonStartError:
            raise
        except Exception as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            tail_text = self.log_tail()
            raise DaemonStartError(
                f"{self.name} did not become ready ({what}): {exc}. Last lines of {self.log_path}:\n{tail_text}"
            ) from exc

    def stop(self, timeout: float = 30.0) -> str | None:
        """Terminate (SIGTERM, then SIGKILL after ``timeout``); return an error text or None.

        A daemon that had already died on its own is reported, with its log
        tail: that is a crash the test run should hear about.
        """
        if self.pid is None:
            return None
        if not self.alive():
            code = self.returncode()
            crashed = self.proc is not None and code not in (0, None, -signal.SIGTERM)
            if crashed and not self._stopping:
                return (
                    f"{self.name} had already exited with code {code}. "
                    f"Last lines of {self.log_path}:\n{self.log_tail(20)}"
                )
            return None
        self._stopping = True  # whatever exit code follows, we asked for it
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return None
        if self._wait_exit(timeout):
            return None
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self._wait_exit(5.0)
        return f"{self.name} (pid {self.pid}) ignored SIGTERM for {timeout:g}s and was killed"

    def _wait_exit(self, timeout: float) -> bool:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False
