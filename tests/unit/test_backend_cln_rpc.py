"""Reaching lightningd: socket failures and lightningd's error objects turned into our errors.

Socket faults are real (a missing path, a file that is not a socket, a socket
nobody may open, a server that never answers or hangs up). lightningd's
refusals use the error objects a real lightningd v25.12.1 returned (recorded
in the comments); tests/integration/test_cln_backend.py provokes the same ones
on a live node.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from l2custody.backends.cln.backend import ClnBackend
from l2custody.backends.cln.rpc import CallTimeout, ClnConnection, translate
from l2custody.errors import (
    BroadcastRejected,
    FundingNegotiationLost,
    InsufficientFunds,
    NodeError,
    NodeUnreachable,
    NotSupported,
    PeerRefused,
    PsbtError,
    UpfrontShutdownRefused,
    UsageError,
)

PEER = "039a35e801f662779a0bf5d51dec9b12d88de0e1e6c835645a7c212260fbaaf391"


def short_dir(tmp_path: Path) -> Path:
    # AF_UNIX paths are limited to ~100 bytes; pytest's tmp paths can be longer.
    import tempfile

    return Path(tempfile.mkdtemp(prefix="cln-", dir="/tmp"))


@pytest.fixture
def sockdir(tmp_path: Path) -> Iterator[Path]:
    d = short_dir(tmp_path)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def serve(path: Path, handler: Callable[[socket.socket], None]) -> threading.Thread:
    """A unix socket server answering one connection with ``handler``."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        try:
            handler(conn)
        finally:
            conn.close()
            server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def read_request(conn: socket.socket) -> dict[str, object]:
    buf = b""
    while True:
        buf += conn.recv(4096)
        try:
            return json.loads(buf)
        except ValueError:
            continue


def test_missing_socket_says_where_it_should_be(sockdir: Path) -> None:
    backend = ClnBackend("east", sockdir / "lightning-rpc")
    with pytest.raises(NodeUnreachable) as err:
        backend.info()
    assert "does not exist" in err.value.message and "<lightning-dir>/<network>/lightning-rpc" in err.value.message


def test_a_file_that_nobody_listens_on_is_a_stale_socket(sockdir: Path) -> None:
    path = sockdir / "lightning-rpc"
    path.write_text("")
    with pytest.raises(NodeUnreachable, match="nothing answers") as err:
        ClnBackend("east", path).info()
    assert "lightningd is not running" in err.value.message


def test_a_socket_this_user_may_not_open_says_so(sockdir: Path) -> None:
    path = sockdir / "lightning-rpc"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    os.chmod(path, 0o600)
    os.chmod(sockdir, 0o755)
    try:
        if os.geteuid() != 0:
            os.chmod(path, 0o000)
            with pytest.raises(NodeUnreachable, match="permission denied") as err:
                ClnBackend("east", path).info()
            assert "--rpc-file-mode" in err.value.message
            return
        # root may open anything: ask as an unprivileged user, in a forked child that drops to nobody.
        import pyln.client  # noqa: F401  (imported while we may still read the venv)

        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            text = "no error"
            try:
                os.setgid(65534)
                os.setuid(65534)
                ClnBackend("east", path).info()
            except NodeUnreachable as exc:
                text = exc.message
            except BaseException as exc:  # report anything else to the parent
                text = f"unexpected {exc!r}"
            os.write(write_end, text.encode())
            os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        with os.fdopen(read_end) as fh:
            message = fh.read()
        assert "permission denied" in message and "--rpc-file-mode" in message, message
    finally:
        server.close()


def test_a_node_that_never_answers_times_out_as_unknown(sockdir: Path) -> None:
    path = sockdir / "lightning-rpc"
    done = threading.Event()
    serve(path, lambda conn: (read_request(conn), done.wait(5)))
    conn = ClnConnection("east", path, timeout=0.5)
    with pytest.raises(CallTimeout) as err:
        conn.call("close", {"id": PEER}, action="close the channel")
    done.set()
    assert isinstance(err.value, NodeUnreachable)
    assert "within 0.5s" in err.value.message and "may still be working on it" in err.value.message


def test_a_node_that_hangs_up_mid_call(sockdir: Path) -> None:
    path = sockdir / "lightning-rpc"
    serve(path, lambda conn: (read_request(conn), None)[1])
    with pytest.raises(NodeUnreachable, match="closed the connection"):
        ClnConnection("east", path, timeout=5).call("getinfo", {}, action="get node info")


def test_the_request_carries_exactly_our_params_and_errors_are_translated(sockdir: Path) -> None:
    path = sockdir / "lightning-rpc"
    seen: dict[str, object] = {}

    def answer(conn: socket.socket) -> None:
        request = read_request(conn)
        seen.update(request)
        reply = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -1, "message": "Already funding channel"}}
        conn.sendall(json.dumps(reply).encode() + b"\n\n")

    serve(path, answer)
    params = {"id": PEER, "psbt": "cHNidP8=", "withhold": False}
    with pytest.raises(UsageError, match="one pending open per peer"):
        ClnConnection("east", path).call("fundchannel_complete", params, action="secure the channel")
    assert seen["method"] == "fundchannel_complete" and seen["params"] == params  # False is sent, not dropped


# Error objects as a real lightningd v25.12.1 returned them.
@pytest.mark.parametrize(
    "method, error, kind, words",
    [
        (
            "fundchannel_start",
            {"code": -1, "message": "Already funding channel"},
            UsageError,
            "one pending open per peer",
        ),
        (
            "fundchannel_cancel",
            {"code": 307, "message": f"No channels being opened or awaiting lock-in for peer_id {PEER}"},
            FundingNegotiationLost,
            "start the open again",
        ),
        (
            "fundchannel_complete",
            {"code": -1, "message": "No channel funding in progress."},
            FundingNegotiationLost,
            "Nothing was secured or broadcast",
        ),
        (
            "fundchannel_complete",
            {"code": 305, "message": "Peer not connected"},
            FundingNegotiationLost,
            "peer disconnects",
        ),
        ("fundchannel_start", {"code": 305, "message": "Peer not connected"}, PeerRefused, "Connect the node"),
        (
            "fundchannel_complete",
            {"code": 309, "message": "Output to open channel is 1sat, should be 500000sat"},
            PsbtError,
            "Rebuild the PSBT",
        ),
        (
            "fundchannel_cancel",
            {
                "code": 308,
                "message": "Has the funding transaction been broadcast? Please use `close` or `dev-fail` instead.",
            },
            NodeError,
            "do not abandon",
        ),
        (
            "close",
            {
                "code": -32602,
                "message": "Destination address 0014928381141b83f0803f5f74fcdad32af5d92cea71 does not "
                "match previous shutdown script 0014f629167aac65df1586cac7ba7e72e9748b2f9b80",
            },
            UpfrontShutdownRefused,
            "close it without a destination",
        ),
        (
            "withdraw",
            {"code": 301, "message": "Could not afford all using all 0 available UTXOs: 0sat available"},
            InsufficientFunds,
            "emergency reserve",
        ),
        (
            "sendpsbt",
            {"code": -1, "message": "Error broadcasting transaction: error code: -25 bad-txns-inputs-missingorspent"},
            BroadcastRejected,
            "bad-txns-inputs-missingorspent",
        ),
        (
            "connect",
            {
                "code": 401,
                "message": "All addresses failed: 127.0.0.1:1: Connection establishment: Connection refused.",
            },
            PeerRefused,
            "Check the peer's address",
        ),
        (
            "bkpr-listbalances",
            {"code": -32601, "message": "Unknown command 'bkpr-listbalances'"},
            NotSupported,
            "too old or the plugin",
        ),
        ("getinfo", {"code": -5, "message": "lightningd is shutting down"}, NodeUnreachable, "shutting down"),
        (
            "fundchannel_start",
            {"code": 304, "message": "Still syncing with bitcoin network"},
            NodeError,
            "still syncing",
        ),
        (
            "fundchannel_start",
            {"code": -1, "message": "Owning subdaemon openingd died (62208)"},
            PeerRefused,
            "reconnect and try again",
        ),
    ],
)
def test_lightningd_errors_become_ours(method: str, error: dict[str, object], kind: type, words: str) -> None:
    exc = translate(error, node="east", method=method, action="do it")
    assert type(exc) is kind
    assert words in exc.message and "east" in exc.message
    assert str(error["message"]) in exc.message or kind in (NotSupported, NodeUnreachable) or "syncing" in words
