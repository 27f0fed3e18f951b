"""Reaching lnd: lndconnect URIs, credentials, and grpc failures turned into our errors.

Transport failures are real (a closed port, a real TLS server with another
certificate, a real deadline). Answers that only a real lnd gives (macaroon
verdicts...) come from the scripted server in lnd_server.py, with lnd's
recorded texts; the same failures on a real lnd are in
tests/integration/test_lnd_backend.py.
"""

from __future__ import annotations

import base64
import socket
import ssl
from pathlib import Path

import grpc
import pytest

from l2custody.backends.lnd.backend import LndBackend
from l2custody.backends.lnd.connect import LndCredentials, der_to_pem, parse_lndconnect
from l2custody.errors import (
    ConfigError,
    FundingNegotiationLost,
    InsufficientFunds,
    NodeAuthError,
    NodeError,
    NodeUnreachable,
    PeerRefused,
    UpfrontShutdownRefused,
    UsageError,
)
from tests.support.lnd_server import LND_MESSAGES, Script, fake_lnd, make_cert

MACAROON = bytes.fromhex("0201036c6e6402f801030a10") + b"\x01" * 40


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture(scope="module")
def cert_pair() -> tuple[bytes, bytes]:
    return make_cert("lnd")


@pytest.fixture
def files(tmp_path: Path, cert_pair: tuple[bytes, bytes]) -> tuple[Path, Path]:
    cert = tmp_path / "tls.cert"
    cert.write_bytes(cert_pair[0])
    mac = tmp_path / "admin.macaroon"
    mac.write_bytes(MACAROON)
    return cert, mac


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- lndconnect -------------------------------------------------------------------------
def test_lndconnect_full_uri(cert_pair: tuple[bytes, bytes]) -> None:
    der = ssl.PEM_cert_to_DER_cert(cert_pair[0].decode())
    info = parse_lndconnect(f"lndconnect://10.0.0.5:10019?cert={b64url(der)}&macaroon={b64url(MACAROON)}")
    assert info.host == "10.0.0.5:10019"
    assert info.macaroon == MACAROON
    assert ssl.PEM_cert_to_DER_cert(info.tls_cert_pem.decode()) == der
    assert "macaroon=" not in repr(info) and MACAROON.hex() not in repr(info)


def test_lndconnect_defaults_port_and_allows_no_cert() -> None:
    info = parse_lndconnect(f"lndconnect://node.example.com?macaroon={b64url(MACAROON)}")
    assert info.host == "node.example.com:10009"
    assert info.tls_cert_pem is None


def test_lndconnect_ipv6_host() -> None:
    info = parse_lndconnect(f"lndconnect://[::1]:10009?macaroon={b64url(MACAROON)}")
    assert info.host == "[::1]:10009"


@pytest.mark.parametrize(
    "uri, message",
    [
        ("https://10.0.0.5:10009?macaroon=AgED", "not an lndconnect URI"),
        ("lndconnect://10.0.0.5:10009?cert=AAAA", "has no macaroon"),
        ("lndconnect://10.0.0.5:10009?macaroon=", "has no macaroon"),
        ("lndconnect://:10009?macaroon=AgED", "has no host"),
        ("lndconnect://10.0.0.5:port?macaroon=AgED", "port is not a number"),
        ("lndconnect://10.0.0.5:10009?macaroon=A", "not base64url"),
    ],
)
def test_lndconnect_refusals(uri: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_lndconnect(uri)


def test_der_to_pem_is_what_ssl_reads(cert_pair: tuple[bytes, bytes]) -> None:
    der = ssl.PEM_cert_to_DER_cert(cert_pair[0].decode())
    assert ssl.PEM_cert_to_DER_cert(der_to_pem(der).decode()) == der


# --- credential files ------------------------------------------------------------------------
def test_credentials_read_der_cert_and_hex_macaroon(tmp_path: Path, cert_pair: tuple[bytes, bytes]) -> None:
    der = ssl.PEM_cert_to_DER_cert(cert_pair[0].decode())
    (tmp_path / "tls.der").write_bytes(der)
    (tmp_path / "mac.hex").write_text(MACAROON.hex() + "\n")
    cert, mac = LndCredentials("h:1", tmp_path / "tls.der", tmp_path / "mac.hex").load()
    assert ssl.PEM_cert_to_DER_cert(cert.decode()) == der
    assert mac == MACAROON


def test_missing_macaroon_file_is_a_config_error(tmp_path: Path) -> None:
    creds = LndCredentials("127.0.0.1:1", None, tmp_path / "nope.macaroon")
    with pytest.raises(ConfigError, match="nope.macaroon does not exist"):
        creds.load()


def test_constructing_a_backend_touches_nothing(tmp_path: Path) -> None:
    # Neither the files nor the network are used before the first call.
    backend = LndBackend.from_paths("x", "127.0.0.1:1", tmp_path / "missing.cert", tmp_path / "missing.mac")
    assert "missing.mac" not in repr(backend) and backend.kind == "lnd"
    with pytest.raises(ConfigError, match="does not exist"):
        backend.info()


# --- real transport failures ---------------------------------------------------------------------
def test_closed_port_is_unreachable(files: tuple[Path, Path]) -> None:
    port = free_port()
    backend = LndBackend.from_paths("west", f"127.0.0.1:{port}", *files, timeout=5)
    with pytest.raises(NodeUnreachable) as err:
        backend.info()
    assert f"127.0.0.1:{port}" in err.value.message
    assert "Connection refused" in err.value.message  # grpc's own words kept
    assert "lnd is running" in err.value.message


def test_wrong_certificate_is_an_auth_error(
    tmp_path: Path, cert_pair: tuple[bytes, bytes], files: tuple[Path, Path]
) -> None:
    other = tmp_path / "other.cert"
    other.write_bytes(make_cert("other")[0])
    with fake_lnd(Script(), *cert_pair) as port:
        backend = LndBackend.from_paths("west", f"127.0.0.1:{port}", other, files[1], timeout=5)
        with pytest.raises(NodeAuthError) as err:
            backend.info()
    assert "TLS handshake" in err.value.message and "tls.cert" in err.value.message
    assert "CERTIFICATE_VERIFY_FAILED" in err.value.message


def test_right_certificate_sends_the_macaroon_as_hex(cert_pair: tuple[bytes, bytes], files: tuple[Path, Path]) -> None:
    script = Script()
    with fake_lnd(script, *cert_pair) as port:
        backend = LndBackend.from_paths("west", f"127.0.0.1:{port}", *files, timeout=5)
        # GetInfo with an empty chains list: network unknown, but the call went through
        info = backend.info()
        backend.close()
    assert info.version == "0.20.1-beta"
    assert script.seen_macaroons == [MACAROON.hex()]


def test_deadline_is_unreachable_with_the_timeout(cert_pair: tuple[bytes, bytes], files: tuple[Path, Path]) -> None:
    with fake_lnd(Script(delay=2.0), *cert_pair) as port:
        backend = LndBackend.from_paths("west", f"127.0.0.1:{port}", *files, timeout=0.5)
        with pytest.raises(NodeUnreachable, match="did not answer get node info within 0.5s"):
            backend.info()
        backend.close()


# --- lnd's answers, translated -------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, error, words",
    [
        ("foreign macaroon", NodeAuthError, "rejected the macaroon"),
        ("garbage macaroon", NodeAuthError, "rejected the macaroon"),
        ("expired macaroon", NodeAuthError, "has expired"),
        ("read-only macaroon", NodeAuthError, "does not allow get node info"),
        ("no funding intent", FundingNegotiationLost, "start the open again"),
        ("reserve", InsufficientFunds, "anchor channels"),
        ("upfront mismatch", UpfrontShutdownRefused, "can only be closed to that address"),
        ("pending limit", PeerRefused, "Number of pending channels exceed maximum"),
    ],
)
def test_lnd_messages_become_our_errors(
    key: str, error: type, words: str, cert_pair: tuple[bytes, bytes], files: tuple[Path, Path]
) -> None:
    message = LND_MESSAGES[key]
    with fake_lnd(Script(error=(grpc.StatusCode.UNKNOWN, message)), *cert_pair) as port:
        backend = LndBackend.from_paths("west", f"127.0.0.1:{port}", *files, timeout=5)
        with pytest.raises(error) as err:
            backend.info()
        backend.close()
    assert type(err.value) is error
    assert words in err.value.message
    assert message in err.value.message  # the node's own words are kept
    assert MACAROON.hex() not in err.value.message


def test_unknown_lnd_message_is_a_node_error(cert_pair: tuple[bytes, bytes], files: tuple[Path, Path]) -> None:
    with fake_lnd(Script(error=(grpc.StatusCode.UNKNOWN, "something new")), *cert_pair) as port:
        backend = LndBackend.from_paths("west", f"127.0.0.1:{port}", *files, timeout=5)
        with pytest.raises(NodeError, match="refused to get node info: something new"):
            backend.info()
        backend.close()


# --- a peer that cannot commit an upfront shutdown address ---------------------------------------
FUNDING_ADDRESS = "bcrt1qgllfke42pcnytr8k2sy68xce2zjpgzrw8rkj9uvktuckf9j4nkxsp0fup2"
CLOSE_TO = "bcrt1qyzetegj4kjqsmh2v5k08p997r70n59tt9ljsy4"
PEER = "03" + "cd" * 32


def test_peer_without_upfront_shutdown_is_refused_unless_allowed(
    cert_pair: tuple[bytes, bytes], files: tuple[Path, Path]
) -> None:
    from l2custody.backends.base import OpenRequest

    no_upfront = LND_MESSAGES["no upfront support"]
    script = Script(opens=[no_upfront, no_upfront, FUNDING_ADDRESS])
    with fake_lnd(script, *cert_pair) as port:
        backend = LndBackend.from_paths("west", f"127.0.0.1:{port}", *files, timeout=5)
        with pytest.raises(UpfrontShutdownRefused, match="cannot commit one") as err:
            backend.open_start(OpenRequest(PEER, 200_000, close_address=CLOSE_TO))
        assert no_upfront in err.value.message
        intent = backend.open_start(OpenRequest(PEER, 200_000, close_address=CLOSE_TO, allow_no_upfront_shutdown=True))
        backend.close()
    assert intent.close_address is None and intent.funding_address == FUNDING_ADDRESS
    assert intent.funding_script == bytes.fromhex("0020") + bytes.fromhex(
        "47fe9b66aa0e26458cf65409a39b1950a414086e38ed22f1965f316496559d8d"
    )
    # what lnd was asked: with the address twice, then (allowed) without it
    assert [r.close_address for r in script.seen_opens] == [CLOSE_TO, CLOSE_TO, ""]
    assert all(r.funding_shim.psbt_shim.no_publish for r in script.seen_opens)
    assert len({r.funding_shim.psbt_shim.pending_chan_id for r in script.seen_opens}) == 3
