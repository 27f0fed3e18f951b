"""Coins near or past their recovery path's opening: what ``report``, ``watch`` and the metrics show.

A recovery wallet (``wallet create --recovery KEY@BLOCKS``) lets its recovery keys spend a
coin once the coin is BLOCKS old (wallet/recovery_timing.py). Before that, the primary keys
re-spend it to the wallet itself (``wallet refresh``) and its clock starts again.
:class:`RecoveryFacts` holds, for the wallet's current generation, every unspent coin with
its first recovery path's opening, the refresh sessions in flight and who signs a refresh;
:func:`timelock_findings` (pure) turns them into the ``recovery-timelock`` check:

- ``due`` (warning): coins whose path opens within ``[recovery] refresh_margin_blocks``:
  refresh them (``wallet refresh``; ``watch`` prepares the PSBT), or sign and broadcast the
  refresh session already re-spending them;
- ``open`` (critical): coins whose path is open: the recovery keys alone can spend them now.

An unconfirmed coin has not started its clock and is never flagged. A wallet without
recovery paths has no facts (``None``): no section, no check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from l2custody.custody.report.snapshot import Finding
from l2custody.wallet.recovery_timing import CoinLock

CHECK = "recovery-timelock"
#: a finding names at most this many coins (the section and the JSON list them all)
MAX_NAMED = 10
OPEN, DUE, LATER, UNCONFIRMED = "open", "due", "later", "unconfirmed"


def coin_status(lock: CoinLock, margin: int) -> str:
    """``open`` (the path may spend it now), ``due`` (opens within ``margin`` blocks),
    ``later``, or ``unconfirmed`` (its clock has not started)."""
    if lock.blocks_left is None:
        return UNCONFIRMED
    if lock.blocks_left == 0:
        return OPEN
    return DUE if lock.blocks_left <= margin else LATER


@dataclass(frozen=True)
class PathFacts:
    """A recovery path: ``threshold`` of ``keys`` (signer names, else fingerprints) after ``delay`` blocks."""

    delay: int
    threshold: int
    keys: tuple[str, ...]

    def describe(self) -> str:
        who = self.keys[0] + " alone" if len(self.keys) == 1 else f"{self.threshold} of {', '.join(self.keys)}"
        return f"{who} after {self.delay:,} blocks"


@dataclass(frozen=True)
class RefreshFacts:
    """A refresh session in flight: it re-spends ``outpoints`` once signed and broadcast."""

    session: str
    state: str
    outpoints: tuple[str, ...]


@dataclass(frozen=True)
class RecoveryFacts:
    """The current generation's coins and their first recovery path, at ``tip``.

    ``coins``: one :class:`CoinLock` per unspent coin (on the shortest path);
    ``reserved``: outpoint -> the session reserving it; ``primary``: the primary keys
    (signer names, else fingerprints), ``threshold`` of whom sign a refresh.
    """

    wallet: str
    tip: int | None
    margin: int
    threshold: int
    primary: tuple[str, ...]
    paths: tuple[PathFacts, ...]
    coins: tuple[CoinLock, ...] = ()
    reserved: dict[str, str] = field(default_factory=dict)
    refreshes: tuple[RefreshFacts, ...] = ()

    def status(self, lock: CoinLock) -> str:
        return coin_status(lock, self.margin)

    def with_status(self, status: str) -> list[CoinLock]:
        """The coins of one status, soonest opening first."""
        chosen = [c for c in self.coins if self.status(c) == status]
        return sorted(chosen, key=lambda c: (c.opens_at or 0, c.outpoint))

    @property
    def next_open_blocks(self) -> int | None:
        """Blocks until the soonest opening of a coin not yet open (None: no such coin)."""
        return min((c.blocks_left for c in self.coins if c.blocks_left), default=None)

    def quorum(self) -> str:
        """``2 of alice, bob, carol``: what a refresh takes."""
        return f"{self.threshold} of {', '.join(self.primary)}"

    def refreshing(self, outpoint: str) -> RefreshFacts | None:
        return next((r for r in self.refreshes if outpoint in r.outpoints), None)

    def to_dict(self) -> dict[str, Any]:
        coins = []
        for c in self.coins:
            session = self.refreshing(c.outpoint)
            coins.append(
                {
                    **c.to_dict(),
                    "status": self.status(c),
                    "reserved_by": self.reserved.get(c.outpoint),
                    "refresh_session": session.session if session else None,
                }
            )
        return {
            "wallet": self.wallet,
            "tip_height": self.tip,
            "margin_blocks": self.margin,
            "primary": {"threshold": self.threshold, "signers": list(self.primary)},
            "paths": [{"delay": p.delay, "threshold": p.threshold, "keys": list(p.keys)} for p in self.paths],
            "coins": coins,
            "due": len(self.with_status(DUE)),
            "open": len(self.with_status(OPEN)),
            "next_open_blocks": self.next_open_blocks,
            "refresh_sessions": [
                {"session": r.session, "state": r.state, "coins": list(r.outpoints)} for r in self.refreshes
            ],
        }


def timelock_findings(facts: RecoveryFacts | None) -> list[Finding]:
    """The ``recovery-timelock`` findings: one ``open`` (critical) naming the coins the
    recovery keys can spend now, one ``due`` (warning) naming those that open within the margin."""
    if facts is None:
        return []
    out = []
    opened, due = facts.with_status(OPEN), facts.with_status(DUE)
    if opened:
        out.append(Finding(CHECK, facts.wallet, _open(facts, opened), kind=OPEN))
    if due:
        out.append(Finding(CHECK, facts.wallet, _due(facts, due), kind=DUE))
    return out


def _sat(value: int) -> str:
    return f"{value:,} sat"


def _blocks(n: int) -> str:
    return f"{n:,} block" + ("" if n == 1 else "s")


def _listed(coins: Sequence[CoinLock], when: Callable[[CoinLock], str]) -> str:
    parts = [f"{c.outpoint} ({_sat(c.value)}) {when(c)}" for c in coins[:MAX_NAMED]]
    if len(coins) > MAX_NAMED:
        parts.append(f"and {len(coins) - MAX_NAMED} more (`l2custody report --json` lists them)")
    return "; ".join(parts)


def _at(facts: RecoveryFacts) -> str:
    return "" if facts.tip is None else f" (the tip is {facts.tip:,})"


def _paths(facts: RecoveryFacts) -> str:
    return "; ".join(p.describe() for p in facts.paths)


def _what_to_do(facts: RecoveryFacts, coins: Sequence[CoinLock]) -> str:
    """Sign the refresh sessions in flight; refresh the others; free the reserved ones first."""
    sessions: dict[str, tuple[RefreshFacts, int]] = {}
    todo, held = [], []
    for c in coins:
        session = facts.refreshing(c.outpoint)
        if session is not None:
            sessions[session.session] = (session, sessions.get(session.session, (session, 0))[1] + 1)
        elif c.outpoint in facts.reserved:
            held.append(c)
        else:
            todo.append(c)
    parts = []
    if sessions:
        names = ", ".join(f"{s.session} ({s.state}, {n} of these coins)" for s, n in sessions.values())
        parts.append(
            f"Refresh session(s) {names} already re-spend them: have them signed by {facts.quorum()} and broadcast "
            "(`l2custody psbt export SESSION --out FILE`, `l2custody psbt sign FILE --signer NAME`, "
            "`l2custody psbt broadcast FILE`) instead of preparing another refresh."
        )
    if todo:
        which = "them" if len(todo) == len(coins) else f"the other {len(todo)}"
        parts.append(
            f"Refresh {which} with `l2custody wallet refresh` (`l2custody watch` prepares the PSBT when [recovery] "
            f"auto_refresh_psbt is on), signed by {facts.quorum()}: `l2custody psbt sign FILE --signer NAME`, then "
            "`l2custody psbt broadcast FILE`."
        )
    if held:
        by = ", ".join(sorted({facts.reserved[c.outpoint] for c in held}))
        parts.append(
            f"{len(held)} of them are reserved by session(s) {by}: finish or abort those (`l2custody psbt list`), "
            "then refresh them."
        )
    return " ".join(parts)


def _due(facts: RecoveryFacts, coins: Sequence[CoinLock]) -> str:
    soon = _listed(coins, lambda c: f"at block {c.opens_at:,}, in {_blocks(c.blocks_left or 0)}")
    return (
        f"{len(coins)} coin(s) of the wallet {facts.wallet}, {_sat(sum(c.value for c in coins))}, reach their "
        f"recovery path within the refresh margin of {_blocks(facts.margin)}{_at(facts)}: {soon}. From then on the "
        f"recovery keys ({_paths(facts)}) can spend them without the primary keys; a refresh restarts their clock. "
        + _what_to_do(facts, coins)
    )


def _open(facts: RecoveryFacts, coins: Sequence[CoinLock]) -> str:
    opened = _listed(coins, lambda c: f"opened at block {c.opens_at:,}")
    return (
        f"{len(coins)} coin(s) of the wallet {facts.wallet}, {_sat(sum(c.value for c in coins))}, are past their "
        f"recovery path's opening{_at(facts)}: {opened}. The recovery keys alone ({_paths(facts)}) can spend them "
        "NOW. If that is not intended, re-spend them with the primary keys at once. " + _what_to_do(facts, coins)
    )
