"""``l2custody node ...`` as a user runs it (CliRunner + one subprocess), without a node.

A `node check` against a real lnd is in tests/integration/test_lnd_backend.py.
"""

from __future__ import annotations

import base64
import json
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.cli_runner import L2CUSTODY, fails, init_regtest, ok, run

MACAROON = bytes.fromhex("0201036c6e6402f801030a10") + b"\x02" * 40
CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return init_regtest(tmp_path)


@pytest.fixture
def creds(tmp_path: Path) -> tuple[Path, Path]:
    cert, mac = tmp_path / "tls.cert", tmp_path / "admin.macaroon"
    cert.write_bytes(CERT)
    mac.write_bytes(MACAROON)
    return cert, mac


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_add_list_remove_lnd(config: Path, creds: tuple[Path, Path]) -> None:
    cert, mac = creds
    added = ok(
        config,
        "node",
        "add",
        "west",
        "--lnd",
        "--host",
        "127.0.0.1:10009",
        "--tls-cert",
        str(cert),
        "--macaroon",
        str(mac),
    )
    assert added["name"] == "west" and added["kind"] == "lnd" and added["macaroon"] == str(mac)
    listed = ok(config, "node", "list")
    assert [n["name"] for n in listed] == ["west"]
    human = run(config, "node", "list")
    assert human.exit_code == 0 and "west" in human.stdout and "127.0.0.1:10009" in human.stdout
    assert MACAROON.hex() not in human.output
    removed = ok(config, "node", "remove", "west")
    assert removed["name"] == "west"
    assert ok(config, "node", "list") == []
    assert "No nodes yet" in run(config, "node", "list").stdout


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--host", "127.0.0.1:10009"], 10, "needs --macaroon"),
        (["--macaroon", "MAC"], 10, "needs --host"),
        (["--host", "localhost", "--macaroon", "MAC"], 10, "expected HOST:PORT"),
        (["--host", "127.0.0.1:10009", "--macaroon", "/nonexistent/admin.macaroon"], 11, "does not exist"),
        (
            ["--host", "127.0.0.1:10009", "--macaroon", "MAC", "--lndconnect", "lndconnect://h:1?macaroon=AgED"],
            10,
            "not both",
        ),
        (["--lndconnect", "https://x"], 10, "not an lndconnect URI"),
    ],
)
def test_add_lnd_refusals(config: Path, creds: tuple[Path, Path], args: list[str], code: int, words: str) -> None:
    args = [str(creds[1]) if a == "MAC" else a for a in args]
    err = fails(config, "node", "add", "west", "--lnd", *args, code=code)
    assert words in err["error"]
    assert ok(config, "node", "list") == []  # nothing stored


def test_kind_is_required_and_names_are_checked(config: Path, creds: tuple[Path, Path]) -> None:
    err = fails(config, "node", "add", "west", "--host", "127.0.0.1:1", "--macaroon", str(creds[1]), code=10)
    assert "--lnd or --cln" in err["error"]
    err = fails(
        config, "node", "add", "bad name", "--lnd", "--host", "127.0.0.1:1", "--macaroon", str(creds[1]), code=10
    )
    assert "node name 'bad name'" in err["error"]


def test_duplicate_name_is_refused(config: Path, creds: tuple[Path, Path]) -> None:
    args = ["--lnd", "--host", "127.0.0.1:10009", "--macaroon", str(creds[1])]
    ok(config, "node", "add", "west", *args)
    err = fails(config, "node", "add", "west", *args, code=10)
    assert "exists already" in err["error"] and "node remove west" in err["error"]


def test_lndconnect_secrets_are_written_0600_and_removed_with_the_node(config: Path, tmp_path: Path) -> None:
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    uri = f"lndconnect://10.1.2.3:10019?cert={b64(b'0' * 40)}&macaroon={b64(MACAROON)}"
    added = ok(config, "node", "add", "far", "--lnd", "--lndconnect", uri)
    assert added["host"] == "10.1.2.3:10019"
    mac, cert = Path(added["macaroon"]), Path(added["tls_cert"])
    assert mac.read_bytes() == MACAROON and cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    for path in (mac, cert):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.is_relative_to(tmp_path / "data")
    assert stat.S_IMODE(mac.parent.stat().st_mode) == 0o700
    ok(config, "node", "remove", "far")
    assert not mac.exists() and not mac.parent.exists()


def test_cln_node_is_recorded_and_check_says_lightningd_is_not_there(config: Path, tmp_path: Path) -> None:
    sock = tmp_path / "lightning-rpc"
    sock.write_text("")  # a path that exists but nothing listens on (a stale socket)
    added = ok(config, "node", "add", "east", "--cln", "--rpc-file", str(sock))
    assert added["kind"] == "cln" and added["rpc_file"] == str(sock)
    result = run(config, "node", "check", "east")
    assert result.exit_code == 1
    assert "reachable" in result.stdout and "FAIL" in result.stdout
    assert "lightningd is not running" in " ".join(result.stdout.split())
    err = fails(config, "node", "add", "east2", "--cln", "--rpc-file", str(tmp_path / "nope"), code=11)
    assert "does not exist" in err["error"]
    err = fails(config, "node", "add", "east3", "--cln", code=10)
    assert "needs --rpc-file" in err["error"]


def test_check_unreachable_lnd_fails_with_what_to_check(config: Path, creds: tuple[Path, Path], tmp_path: Path) -> None:
    cert = tmp_path / "real.cert"
    from tests.support.lnd_server import make_cert

    cert.write_bytes(make_cert()[0])
    port = closed_port()
    ok(
        config,
        "node",
        "add",
        "west",
        "--lnd",
        "--host",
        f"127.0.0.1:{port}",
        "--tls-cert",
        str(cert),
        "--macaroon",
        str(creds[1]),
        "--timeout",
        "5",
    )
    result = run(config, "node", "check", "west", json_out=True)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["checks"][0]["name"] == "reachable" and not report["checks"][0]["ok"]
    assert "lnd is running" in report["checks"][0]["detail"]


def test_unknown_node(config: Path) -> None:
    err = fails(config, "node", "check", "nowhere", code=53)
    assert "no node named 'nowhere'" in err["error"] and "node add" in err["error"]
    fails(config, "node", "remove", "nowhere", code=53)


def test_installed_command_lists_nodes(config: Path, creds: tuple[Path, Path]) -> None:
    ok(config, "node", "add", "west", "--lnd", "--host", "127.0.0.1:10009", "--macaroon", str(creds[1]))
    proc = subprocess.run(
        [str(L2CUSTODY), "--config", str(config), "--json", "node", "list"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["name"] == "west"
    proc = subprocess.run([str(L2CUSTODY), "node", "add", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--lndconnect" in proc.stdout and "Examples" in proc.stdout
