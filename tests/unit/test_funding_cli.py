"""`channel open/batch` and `session ...` as a user runs them, where no node is needed:
bad input is refused with what to do, unknown sessions are named, help has examples.
Everything that talks to lnd is in tests/integration/test_funding*.py (real lnd)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli_runner import (
    L2CUSTODY,
    create_wallet,
    fails,
    init_regtest,
    invoke,
    ok,
    run,
    software_signers,
)

PEER = "02" + "ab" * 32


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = init_regtest(tmp_path)
    create_wallet(path, software_signers(path, tmp_path))
    return path


def test_bad_peers_amounts_and_files_are_refused_before_anything_starts(config: Path, tmp_path: Path) -> None:
    err = fails(config, "channel", "open", "west", "02abc", "500000", code=10)
    assert "66 hex characters" in err["error"]
    err = fails(config, "channel", "open", "west", f"{PEER}@nohost", "500000", code=10)
    assert "HOST:PORT" in err["error"]
    err = fails(config, "channel", "open", "west", PEER, "5 bitcoins", code=12)
    assert "cannot read amount" in err["error"]
    err = fails(config, "channel", "batch", str(tmp_path / "none.csv"), code=10)
    assert "cannot read the batch file" in err["error"]
    err = fails(config, "channel", "open", "west", PEER, "500000", "--signer", "alice", code=10)
    assert "--interactive" in err["error"]
    assert ok(config, "session", "list", "--all") == []


def test_a_node_that_is_not_registered_is_named(config: Path) -> None:
    err = fails(config, "channel", "open", "west", PEER, "500000", "--fee-rate", "2", code=53)
    assert "node add" in err["error"]
    assert ok(config, "wallet", "balance")["reserved"] == 0


@pytest.mark.parametrize(
    "command",
    [
        ["session", "show", "fs-nothere"],
        ["session", "status", "fs-nothere"],
        ["session", "sign", "fs-nothere", "--signer", "alice"],
        ["session", "broadcast", "fs-nothere"],
        ["session", "abort", "fs-nothere"],
    ],
)
def test_unknown_sessions_are_named_with_where_to_look(config: Path, command: list[str]) -> None:
    err = fails(config, *command, code=61)
    assert "fs-nothere" in err["error"] and "session list" in err["error"]


def test_an_empty_session_list_says_how_to_start(config: Path) -> None:
    result = run(config, "session", "list")
    assert result.exit_code == 0 and "l2custody channel open NODE PEER AMOUNT" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["channel", "open"],
        ["channel", "batch"],
        ["session", "sign"],
        ["session", "status"],
        ["session", "broadcast"],
        ["session", "abort"],
    ],
)
def test_help_has_examples(command: list[str]) -> None:
    result = invoke([*command, "--help"])
    assert result.exit_code == 0 and "l2custody " + " ".join(command) in result.stdout


def test_installed_command_shows_channel_open_help(config: Path) -> None:
    proc = subprocess.run(
        [str(L2CUSTODY), "channel", "open", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "L2CUSTODY_CONFIG": str(config)},
        timeout=60,
    )
    assert proc.returncode == 0 and "--allow-no-upfront-shutdown" in proc.stdout


def test_show_works_from_the_store_when_the_chain_is_unreachable(config: Path) -> None:
    from l2custody.config import load_config
    from l2custody.custody.funding.records import create_session
    from l2custody.custody.funding.session import (
        ChannelRequest,
        FundingLeg,
        FundingSession,
        SessionState,
    )
    from l2custody.store import Store

    leg = FundingLeg(ChannelRequest("west", PEER, 300_000), close_address="bcrt1qclose")
    session = FundingSession("fs-0000abcd", SessionState.NEGOTIATING, 700, (leg,))
    with Store.open(load_config(config).store_path) as store:
        create_session(store, store.wallet().id, session)
    shown = ok(config, "session", "show", "fs-0000abcd")
    assert shown["state"] == "negotiating" and shown["tip_height"] == 700
    assert any("chain unreachable" in n for n in shown["notes"])
    human = run(config, "session", "show", "fs-0000abcd")
    assert human.exit_code == 0 and "Session fs-0000abcd: negotiating" in human.stdout
    assert "session abort fs-0000abcd" in human.stdout
    listed = run(config, "session", "list")
    assert "fs-0000abcd" in listed.stdout and "negotiating" in listed.stdout
