"""``l2custody node macaroon`` / ``node enforce`` as a user runs them, where no node is needed.

The real round trip on lnd 0.20.1 is tests/integration/test_enforce_lnd.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_runner import create_wallet, fails, init_regtest, ok, run, software_signers
from tests.unit.test_cli_node import CERT, MACAROON


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = init_regtest(tmp_path)
    create_wallet(cfg, software_signers(cfg, tmp_path))
    cert, mac = tmp_path / "tls.cert", tmp_path / "admin.macaroon"
    cert.write_bytes(CERT)
    mac.write_bytes(MACAROON)
    ok(cfg, "node", "add", "west", "--lnd", "--host", "127.0.0.1:1", "--tls-cert", str(cert), "--macaroon", str(mac))
    sock = tmp_path / "lightning-rpc"
    sock.write_text("")
    ok(cfg, "node", "add", "east", "--cln", "--rpc-file", str(sock))
    return cfg


def test_a_holder_name_that_cannot_be_a_caveat_condition_is_refused_before_lnd_is_asked(
    config: Path, tmp_path: Path
) -> None:
    err = fails(config, "node", "macaroon", "west", "--out", str(tmp_path / "m"), "--holder", "ops team", code=10)
    assert "--holder 'ops team'" in err["error"]
    assert not (tmp_path / "m").exists()


def test_an_existing_file_is_never_overwritten(config: Path, tmp_path: Path) -> None:
    (tmp_path / "m").write_text("keep me")
    err = fails(config, "node", "macaroon", "west", "--out", str(tmp_path / "m"), code=10)
    assert "never overwrites" in err["error"] and (tmp_path / "m").read_text() == "keep me"


def test_core_lightning_has_the_plugin_instead(config: Path, tmp_path: Path) -> None:
    err = fails(config, "node", "macaroon", "east", "--out", str(tmp_path / "m"), code=54)
    assert "RPC middleware" in err["error"]
    err = fails(config, "node", "enforce", "east", code=54)
    assert "plugin enforces the same rules" in err["error"]


def test_an_unreachable_lnd_is_an_error_naming_it(config: Path, tmp_path: Path) -> None:
    err = fails(config, "node", "macaroon", "west", "--out", str(tmp_path / "m"), code=51)
    assert "west" in err["error"] and not (tmp_path / "m").exists()


def test_help_says_how_to_run_lnd() -> None:
    result = run(Path("/nonexistent.toml"), "node", "enforce", "--help")
    assert result.exit_code == 0 and "addmandatory=l2custody-enforce" in result.stdout
