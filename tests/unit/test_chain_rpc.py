"""chain/rpc.py error translation for faults a live node cannot be asked to produce.

The normal behaviour (both Core and btcd answers, rejected broadcasts, bad
credentials, network check) is tested against a real btcd in
tests/integration/test_wallet_chain.py. Here: nothing listening, a bad
certificate file, and — a fault injection, named as such — a peer that
accepts the connection and never answers, which is how a broadcast ends up
"unknown".
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from l2custody.chain.base import ChainSource
from l2custody.chain.rpc import JsonRpcChain
from l2custody.errors import BroadcastUnknown, ChainUnreachable, ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server():
    """FAULT INJECTION: a TCP server that accepts, reads, and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def run() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except OSError:
                continue

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_it_is_a_chain_source_and_the_constructor_does_no_io() -> None:
    chain = JsonRpcChain(f"http://127.0.0.1:{free_port()}", user="u", password="p")
    assert isinstance(chain, ChainSource)


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not http"):
        JsonRpcChain("127.0.0.1:8332")


def test_nothing_listening_names_the_url_and_what_to_check() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    chain = JsonRpcChain(url, user="u", password="p", timeout=2)
    with pytest.raises(ChainUnreachable) as exc:
        chain.tip_height()
    assert url in exc.value.message and "is running" in exc.value.message


def test_refused_broadcast_is_unreachable_not_unknown() -> None:
    """Nothing was sent when the connection is refused: not an 'unknown' outcome."""
    chain = JsonRpcChain(f"http://127.0.0.1:{free_port()}", user="u", password="p", timeout=2)
    with pytest.raises(ChainUnreachable) as exc:
        chain.broadcast(b"\x00")
    assert not isinstance(exc.value, BroadcastUnknown)


def test_timeout_during_broadcast_is_unknown(silent_server: int) -> None:
    chain = JsonRpcChain(f"http://127.0.0.1:{silent_server}", user="u", password="p", timeout=0.5)
    with pytest.raises(BroadcastUnknown, match="check the chain"):
        chain.broadcast(bytes.fromhex("0200000000"))


def test_timeout_on_a_read_is_unreachable(silent_server: int) -> None:
    chain = JsonRpcChain(f"http://127.0.0.1:{silent_server}", user="u", password="p", timeout=0.5)
    with pytest.raises(ChainUnreachable, match="did not answer getblockcount"):
        chain.tip_height()


def test_unreadable_cookie_says_which_file(tmp_path: Path) -> None:
    chain = JsonRpcChain(f"http://127.0.0.1:{free_port()}", cookie=tmp_path / ".cookie")
    with pytest.raises(ChainUnreachable, match=r"\.cookie"):
        chain.tip_height()


def test_bad_certificate_file_is_reported(tmp_path: Path) -> None:
    cert = tmp_path / "rpc.cert"
    cert.write_text("not a certificate")
    chain = JsonRpcChain(f"https://127.0.0.1:{free_port()}", user="u", password="p", cert=cert)
    with pytest.raises(ChainUnreachable, match="rpc.cert"):
        chain.tip_height()
