"""Secrets never leave in a message (issue 11, class 12): private keys, seed words and
URL logins are removed from every error the CLI prints, every ``watch`` log line and
every alert, wherever in the text they appear — the edges redact whole messages, so a
secret quoted by a library's error text is caught too."""

from __future__ import annotations

import io
import json
import logging

import pytest
from embit import bip32, bip39
from embit.networks import NETWORKS
from embit.wordlists.bip39 import WORDLIST
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody import redact
from l2custody.custody.watch.alerts import Alert
from l2custody.errors import ChainUnreachable
from tests.support.wallet import WALLET

settings.register_profile("l2custody", max_examples=300, deadline=None, derandomize=True)
settings.load_profile("l2custody")

TPRV = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(WALLET["mnemonics"][0]), version=NETWORKS["test"]["xprv"])
SECRETS = [TPRV.to_base58(), WALLET["mnemonics"][0], "http://alice:hunter2@127.0.0.1:18443"]
PROSE = st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=60)


def leaked(out: str) -> bool:
    return TPRV.to_base58()[:20] in out or "hunter2" in out or " ".join(WALLET["mnemonics"][0].split()[:6]) in out


@given(PROSE, st.sampled_from(SECRETS), PROSE)
def test_no_secret_survives_anywhere_in_a_message(before: str, secret: str, after: str) -> None:
    assert not leaked(redact.text(f"{before} {secret} {after}"))


@given(st.lists(st.sampled_from(WORDLIST), min_size=6, max_size=24))
def test_any_run_of_six_or_more_seed_words_is_removed(words: list[str]) -> None:
    out = redact.text("cannot read key: " + " ".join(words) + " (bad checksum)")
    assert "seed words: not shown" in out and not any(f" {w} " in f" {out} " for w in words[2:4])


@pytest.mark.parametrize(
    "message",
    [
        "the store /var/lib/l2custody/l2custody.sqlite is locked by another l2custody process (e.g. `watch` writing)",
        "peer address '203.0.113.5' must be HOST:PORT (e.g. 203.0.113.5:9735)",
        "cannot reach the chain at http://127.0.0.1:18443: connection refused; is bitcoind running?",
        'amount must be text like "0.01btc" or a whole number of satoshis, got float 1.5',
        "the address you gave is about to be used above the limit",
    ],
)
def test_ordinary_messages_pass_unchanged(message: str) -> None:
    assert redact.text(message) == message


def test_the_cli_error_edge_redacts_whatever_the_message_holds(capsys: pytest.CaptureFixture[str]) -> None:
    from l2custody.cli import main

    main.STATE.json = True
    try:
        with pytest.raises(SystemExit):
            main.fail(ChainUnreachable(f"cannot reach http://alice:hunter2@127.0.0.1:1 with {TPRV.to_base58()}"))
    finally:
        main.STATE.json = False
    out = capsys.readouterr().out
    assert not leaked(out) and json.loads(out)["kind"] == "chain-unreachable"


def test_watch_log_lines_are_redacted() -> None:
    from l2custody.cli import watch

    stream = io.StringIO()
    watch._logging(verbose=False)
    logger = logging.getLogger("l2custody")
    handler = logger.handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    handler.emit = logging.StreamHandler.emit.__get__(handler)  # type: ignore[method-assign]
    logging.getLogger("l2custody.watch").warning("chain %s unreachable; key %s", SECRETS[2], SECRETS[0])
    assert "unreachable" in stream.getvalue() and not leaked(stream.getvalue())


def test_alerts_carry_no_secret_to_any_sink() -> None:
    alert = Alert("k", "chain-unreachable", "warning", "chain", f"{SECRETS[2]} down; {SECRETS[1]}")
    assert not leaked(json.dumps(alert.to_dict()))
