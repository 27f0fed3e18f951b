"""channel list/show/close/close-status, sweep and sweep-status as a user runs them, without a node.

With a node they run in tests/integration/test_close_lnd.py and test_sweep_lnd.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_runner import fails, init_regtest, ok, run
from tests.support.wallet import WALLET


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return init_regtest(tmp_path)


def test_every_command_needs_the_wallet_first(config: Path) -> None:
    for argv in (["channel", "list"], ["channel", "close", "ab" * 32 + ":0"], ["sweep", "west"], ["sweep-status"]):
        err = fails(config, *argv, code=21)
        assert "wallet" in err["error"]


def test_without_nodes_the_error_says_how_to_add_one(config: Path) -> None:
    ok(config, "wallet", "import", WALLET["descriptor"])
    err = fails(config, "channel", "list", code=10)
    assert "l2custody node add" in err["error"]
    err = fails(config, "channel", "close", "ab" * 32 + ":0", "--node", "west", code=53)
    assert "west" in err["error"] and "node add" in err["error"]
    err = fails(config, "sweep", "west", "--keep", "lots", code=12)
    assert "lots" in err["error"]
    err = fails(config, "channel", "show", "chan-1", code=10)
    assert "channel point" in err["error"]
    empty = run(config, "sweep-status")
    assert empty.exit_code == 0 and "No sweeps yet" in empty.stdout
    assert ok(config, "sweep-status") == []


def test_help_texts_carry_examples() -> None:
    for argv in (
        ["channel", "close", "--help"],
        ["channel", "list", "--help"],
        ["sweep", "--help"],
        ["node", "guard", "--help"],
        ["channel", "close-status", "--help"],
    ):
        result = run(Path("unused.toml"), *argv)
        assert result.exit_code == 0 and "Example" in result.stdout and "l2custody" in result.stdout
