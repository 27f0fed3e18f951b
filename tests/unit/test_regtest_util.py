"""The harness's primitives on real (tiny) processes: polling, ports, start-up failures, stop."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from regtest import DaemonStartError, PortConflict, WaitTimeout, wait_for
from regtest.daemon import Daemon, tail
from regtest.util import reserve_port


def test_wait_for_returns_the_truthy_value() -> None:
    calls = iter([0, None, "", "ready"])
    assert wait_for(lambda: next(calls), timeout=5, what="x", interval=0.001) == "ready"


def test_wait_for_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(WaitTimeout, match="waiting for the moon to turn blue"):
        wait_for(lambda: False, timeout=0.1, what="the moon to turn blue", interval=0.01)


def test_reserved_ports_are_distinct_and_bindable() -> None:
    ports = {reserve_port() for _ in range(20)}
    assert len(ports) == 20
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))


def test_tail_returns_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"
    assert tail(tmp_path / "missing") == ""


def _daemon(tmp_path: Path, script: str) -> Daemon:
    return Daemon("toy", [sys.executable, "-c", script, str(tmp_path)], tmp_path / "daemon.log", marker=str(tmp_path))


def test_daemon_dying_at_start_fails_fast_with_its_log_tail(tmp_path: Path) -> None:
    # Output is computed so that it differs from the command line the log header repeats.
    daemon = _daemon(tmp_path, "import sys; print('fatal: bad value ' + 'foo'.upper()); sys.exit(3)")
    daemon.start()
    with pytest.raises(DaemonStartError) as err:
        daemon.wait_ready(lambda: False, timeout=30, what="never")
    assert not isinstance(err.value, PortConflict)
    assert "fatal: bad value FOO" in err.value.message
    assert "code 3" in err.value.message and str(daemon.log_path) in err.value.message


def test_address_in_use_in_the_log_is_a_port_conflict(tmp_path: Path) -> None:
    daemon = _daemon(
        tmp_path, "import sys; print('listen tcp 127.0.0.1:1: bind: address already in ' + 'use'); sys.exit(1)"
    )
    daemon.start()
    with pytest.raises(PortConflict):
        daemon.wait_ready(lambda: False, timeout=30, what="never")


def test_stop_terminates_and_reports_a_daemon_that_ignores_sigterm(tmp_path: Path) -> None:
    polite = _daemon(tmp_path, "import time; time.sleep(60)")
    polite.start()
    assert polite.alive()
    assert polite.stop(timeout=10) is None
    assert not polite.alive()

    stubborn = _daemon(
        tmp_path,
        "import signal, time; signal.signal(signal.SIGTERM, "
        "signal.SIG_IGN); print('armed'.upper(), flush=True); "
        "time.sleep(60)",
    )
    stubborn.start()
    wait_for(lambda: "ARMED" in stubborn.log_tail(), timeout=10, what="toy to ignore SIGTERM")
    error = stubborn.stop(timeout=0.5)
    assert error is not None and "ignored SIGTERM" in error
    assert not stubborn.alive()


def test_stop_reports_a_daemon_that_had_crashed(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "import sys; print('panic: ' + 'oops'.upper()); sys.exit(2)")
    daemon.start()
    wait_for(lambda: not daemon.alive(), timeout=10, what="toy to exit")
    error = daemon.stop()
    assert error is not None and "exited with code 2" in error and "panic: OOPS" in error


def test_attached_daemon_checks_the_marker_before_signalling(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "import time; time.sleep(60)")
    daemon.start()
    assert daemon.pid is not None
    try:
        assert Daemon.attach("toy", daemon.pid, daemon.log_path, str(tmp_path)).alive()
        # A recycled pid (another command line) is not ours: never signalled.
        stranger = Daemon.attach("toy", daemon.pid, daemon.log_path, "/not/our/dir")
        assert not stranger.alive()
        assert stranger.stop() is None
        assert daemon.alive()
    finally:
        daemon.stop()


def test_lnd_is_not_ready_while_its_macaroon_is_still_empty(tmp_path: Path) -> None:
    """lnd creates admin.macaroon, then writes it: read empty, the harness would keep a gRPC
    channel without credentials and time out ("empty macaroon data"; seen once in CI)."""
    from regtest.lnd import LndNode

    node = LndNode("lnd-x", tmp_path / "lnd-x", tmp_path / "lnd", chain=None)  # type: ignore[arg-type]
    node.tls_cert.parent.mkdir(parents=True, exist_ok=True)
    node.admin_macaroon.parent.mkdir(parents=True, exist_ok=True)
    node.tls_cert.write_text("cert")
    node.admin_macaroon.write_bytes(b"")
    assert node._ready() is False and node._channel is None
