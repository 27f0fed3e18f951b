"""Polling and free loopback ports: the two primitives every daemon start uses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from regtest.errors import WaitTimeout

T = TypeVar("T")

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Polls quickly at first and backs off to half a second. Raises WaitTimeout
    naming ``what`` when ``timeout`` seconds pass. Exceptions raised by the
    predicate propagate: a predicate that wants to tolerate an error catches it.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {what}; the daemons' logs are in the network directory"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def reserve_port() -> int:
    """Return a loopback TCP port that was free a moment ago.

    The kernel picks it (bind to port 0), then we release it for the daemon.
    Another process may grab it in between; daemon start-up detects that and
    retries on a fresh port (see ``daemon.Daemon``). Ports already handed out
    by this process are never handed out twice.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with _ports_lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError("could not find a free loopback port after 50 tries")


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
