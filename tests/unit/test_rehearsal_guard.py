"""Channel opens wait for a rehearsed wallet: `channel open`, `channel batch` and the classic
`--interactive` flow all refuse to fund from a wallet generation without a confirmed
rehearsal (before any node or the chain is asked), saying how to rehearse, unless
``[rehearsal] required = false``. Driven through the CLI, as operators meet it."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2custody.config import load_config
from l2custody.store import Store
from l2custody.wallet.rehearsal_records import RehearsalRecord, RehearsalState, SignerRef, save_rehearsal
from tests.support.cli_runner import allow_unrehearsed_opens, create_wallet, fails, ok, software_signers

PEER = "02" + "ab" * 32
REFUSAL = (
    "the wallet treasury (generation 1) has never been rehearsed: run `l2custody wallet rehearse` to prove its "
    "signers can sign a spend before funding channels from it, or set [rehearsal] required = false in the config"
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A 2-of-3 wallet and an lnd node at a closed port; the chain at a closed port too: the
    refusal must come before either is dialled."""
    path = tmp_path / "config.toml"
    chain = ["--chain-url", "http://127.0.0.1:9", "--chain-user", "u", "--chain-password", "p"]
    ok(path, "init", "--network", "regtest", "--data-dir", str(tmp_path / "data"), *chain)
    create_wallet(path, software_signers(path, tmp_path))
    (tmp_path / "admin.macaroon").write_bytes(b"\x02\x01" + bytes(62))
    ok(path, "node", "add", "west", "--lnd", "--host", "127.0.0.1:9", "--macaroon", str(tmp_path / "admin.macaroon"))
    (tmp_path / "channels.csv").write_text(f"node,peer,amount\nwest,{PEER},500000\nwest,{PEER},600000\n")
    return path


def opens(config: Path) -> list[list[str]]:
    batch = str(config.parent / "channels.csv")
    return [
        ["channel", "open", "west", PEER, "500000", "--fee-rate", "2"],
        ["channel", "batch", batch, "--fee-rate", "2"],
        ["channel", "open", "west", PEER, "500000", "--fee-rate", "2", "--interactive", "-s", "alice", "-s", "bob"],
    ]


def rehearsal(config: Path, state: RehearsalState, error: str | None = None) -> None:
    with Store.open(load_config(config).store_path) as store, store.transaction():
        signers = (SignerRef("alice", "00000000", "software"),)
        save_rehearsal(store, RehearsalRecord("rh-0001", store.wallet().id, state, 10_000, signers, error=error))


def test_every_open_is_refused_until_the_wallet_is_rehearsed(config: Path) -> None:
    for argv in opens(config):
        err = fails(config, *argv, code=32)
        assert err["error"] == REFUSAL and err["kind"] == "policy", argv
    assert ok(config, "session", "list", "--all") == [] and ok(config, "wallet", "balance")["reserved"] == 0


def test_a_failed_rehearsal_is_no_rehearsal(config: Path) -> None:
    rehearsal(config, RehearsalState.FAILED, "signer vault: it came back without its signature")
    for argv in opens(config):
        err = fails(config, *argv, code=32)
        assert "never been rehearsed (rehearsal rh-0001 failed: signer vault: it came back" in err["error"]


def test_a_confirmed_rehearsal_lets_the_open_go_on_to_the_chain(config: Path) -> None:
    rehearsal(config, RehearsalState.CONFIRMED)
    for argv in opens(config):
        err = fails(config, *argv, code=41)  # the next pre-flight step: syncing from the (closed) chain port
        assert "127.0.0.1:9" in err["error"], argv


def test_required_false_is_the_operators_way_out(config: Path) -> None:
    allow_unrehearsed_opens(config)
    assert load_config(config).rehearsal.required is False
    for argv in opens(config):
        fails(config, *argv, code=41)


# --- `wallet rehearse` refusals that need no chain -----------------------------------------------
@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["--signers", "alice"], 10, "name exactly 2 signers with --signers (got 1: alice)"),
        (["--signers", "alice,,zed"], 10, "no signer named 'zed'"),
        (["--signers", "alice,bob", "--amount", "500"], 10, "at least 546 sat (dust)"),
        (["--amount", "5 bitcoins"], 12, "cannot read amount"),
        (["--wait-signers", "-1"], 10, "--wait-signers is a number of seconds"),
        (["--abort"], 10, "no unfinished rehearsal to abort"),
    ],
)
def test_wallet_rehearse_refuses_before_any_network(config: Path, argv: list[str], code: int, words: str) -> None:
    err = fails(config, "wallet", "rehearse", *argv, code=code)
    assert words in err["error"]
