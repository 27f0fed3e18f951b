"""The report's ``rehearsal`` check: a wallet generation never rehearsed, a signer whose last
rehearsal signature is older than ``[rehearsal] max_age_days`` (or that never signed one), a
key without a signer, and a rehearsal that failed; the facts read from a real store after
real rehearsals (memory chain), and how `report` shows them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from l2custody.custody.report.observe import rehearsal_facts
from l2custody.custody.report.snapshot import (
    RehearsalFacts,
    RehearsalRun,
    ReportSettings,
    SignerRehearsal,
    build_snapshot,
)
from l2custody.errors import SignerError
from l2custody.wallet.rehearsal import Rehearsal, RehearsalOptions
from tests.support.rehearsal import World
from tests.unit.test_report import inputs

NOW = 1_700_000_000.0  # the inputs' taken_at
DAY = 86_400.0
SETTINGS = ReportSettings(rehearsal_required=True, rehearsal_max_age_days=90)
SIGNERS = (
    SignerRehearsal("s0", "software", "73c5da0a", NOW - 10 * DAY),
    SignerRehearsal("s1", "software", "b8688df1", NOW - 91 * DAY),
    SignerRehearsal("vault", "file", "28645006", None),
)
CONFIRMED = RehearsalRun("rh-1", "confirmed", NOW - 10 * DAY, ("s0", "s1"), "ab" * 32)


def findings(facts: RehearsalFacts, settings: ReportSettings = SETTINGS) -> dict[tuple[str, str], str]:
    snap = build_snapshot(inputs((), rehearsal=facts), settings)
    assert snap.rehearsal == facts and snap.to_dict()["rehearsal"] == facts.to_dict()
    assert snap.failed_checks()["rehearsal"] == len(snap.findings)
    return {(f.kind, f.subject): f.message for f in snap.findings if f.check == "rehearsal"}


def test_a_generation_never_rehearsed_is_flagged_with_how_to_rehearse() -> None:
    got = findings(RehearsalFacts("treasury", 2, signers=SIGNERS))
    assert got == {
        ("never", "treasury#2"): "the wallet treasury (generation 2) has never been rehearsed. Channel opens are "
        "refused until `l2custody wallet rehearse` proves its signers can sign a spend (or set [rehearsal] "
        "required = false)"
    }
    pending = RehearsalRun("rh-2", "broadcast", NOW, ("s0", "vault"), "cd" * 32)
    got = findings(RehearsalFacts("treasury", 2, pending=pending, signers=SIGNERS))
    assert "rehearsal rh-2 is broadcast: `l2custody wallet rehearse` continues it" in got[("never", "treasury#2")]


def test_each_signer_not_proven_within_max_age_is_flagged_and_recent_ones_are_not() -> None:
    got = findings(RehearsalFacts("treasury", 1, confirmed=CONFIRMED, signers=SIGNERS))
    assert set(got) == {("signer", "s1"), ("signer", "vault")}
    assert "last signed a rehearsal 91 days ago (more than 90)" in got[("signer", "s1")]
    assert got[("signer", "vault")].startswith(
        "signer vault (file, key 28645006) of the wallet treasury (generation 1) has never signed a rehearsal of it"
    )
    assert "`--signers vault,...`" in got[("signer", "vault")]
    longer = findings(
        RehearsalFacts("treasury", 1, confirmed=CONFIRMED, signers=SIGNERS[:2]),
        replace(SETTINGS, rehearsal_max_age_days=92),
    )
    assert longer == {}


def test_a_key_without_a_signer_cannot_be_proven() -> None:
    got = findings(
        RehearsalFacts("treasury", 1, confirmed=CONFIRMED, signers=SIGNERS[:1], unregistered_keys=("0badc0de",))
    )
    assert (
        "key 0badc0de of the wallet treasury (generation 1) has no registered signer" in got[("no-signer", "0badc0de")]
    )


def test_a_failed_rehearsal_is_flagged_even_when_rehearsal_is_not_required() -> None:
    failed = RehearsalRun("rh-3", "failed", NOW, ("s0", "vault"), None, "signer vault: it came back unsigned")
    facts = RehearsalFacts("treasury", 1, failed=failed, signers=SIGNERS)
    optional = findings(facts, replace(SETTINGS, rehearsal_required=False))
    assert optional == {
        ("failed", "rh-3"): "the last rehearsal of the wallet treasury (generation 1), rh-3 (signers s0, vault), "
        "failed: signer vault: it came back unsigned. Fix it and run `l2custody wallet rehearse --signers "
        "s0,vault` again"
    }
    assert set(findings(facts)) == {("failed", "rh-3"), ("never", "treasury#1")}


def test_not_required_and_nothing_failed_is_no_finding_and_no_facts_no_check() -> None:
    assert findings(RehearsalFacts("treasury", 1, signers=SIGNERS), replace(SETTINGS, rehearsal_required=False)) == {}
    snap = build_snapshot(inputs(()), SETTINGS)  # watch reads no rehearsal facts: nothing to judge
    assert snap.rehearsal is None and snap.to_dict()["rehearsal"] is None and snap.failed_checks()["rehearsal"] == 0


# --- facts from a real store -------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = World.make(tmp_path)
    yield w
    w.wallet.close()


def test_facts_follow_real_rehearsals(world: World) -> None:
    assert rehearsal_facts(world.wallet) == RehearsalFacts(
        "treasury",
        1,
        signers=tuple(SignerRehearsal(s.name, s.kind, s.fingerprint, None) for s in world.wallet.store.signers()),
    )
    quick = RehearsalOptions(signers=("s0", "s1"), timeout=0.0, poll_seconds=0.01)
    sent = Rehearsal(world.wallet).run(quick).record
    facts = rehearsal_facts(world.wallet)
    assert facts.confirmed is None and facts.pending == RehearsalRun(
        sent.id, "broadcast", sent.updated, ("s0", "s1"), sent.txid
    )
    world.chain.add_block()
    done = Rehearsal(world.wallet).run(replace(quick, signers=(), timeout=5.0)).record
    facts = rehearsal_facts(world.wallet)
    assert facts.pending is None and facts.confirmed is not None and facts.confirmed.id == done.id
    last = {s.name: s.last_signed for s in facts.signers}
    assert last["s0"] == last["s1"] == done.details["confirmed_at"] and last["vault"] is None

    started = Rehearsal(world.wallet).run(replace(quick, signers=("s0", "vault"))).record
    world.sign_offline(started.session_id, sign=False)
    with pytest.raises(SignerError):
        Rehearsal(world.wallet).run(replace(quick, signers=()))
    facts = rehearsal_facts(world.wallet)
    assert (
        facts.failed is not None
        and facts.failed.id == started.id
        and "without its signature" in (facts.failed.error or "")
    )
    assert facts.confirmed is not None and facts.confirmed.id == done.id  # the earlier success still counts


def test_report_shows_the_rehearsals_and_each_signers_last_signature() -> None:
    from l2custody.cli.report import render_report

    pending = RehearsalRun("rh-2", "signing", NOW, ("s0", "vault"))
    facts = RehearsalFacts(
        "treasury", 1, confirmed=CONFIRMED, pending=pending, signers=SIGNERS, unregistered_keys=("0badc0de",)
    )
    text = render_report(build_snapshot(inputs((), rehearsal=facts), SETTINGS).to_dict())
    assert "Rehearsals of treasury generation 1:\n  last confirmed: rh-1 on " in text
    assert "(signers s0, s1)\n  pending: rh-2 signing (signers s0, vault; run it again to continue)" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("s0 ", "s1 ", "vault ", "(none) "))}
    assert rows["vault"].split()[-1] == "never" and rows["(none)"].split()[2] == "0badc0de"
    assert "FAIL  rehearsal (3)" in text
