"""Exposure to older wallet generations: what ``report``, ``watch`` and the metrics show per generation.

A channel commits its cooperative-close address when it opens, so after ``wallet
rotate`` the channels opened before still pay the generation that was current then,
and its coins wait there until ``wallet migrate`` moves them. :func:`generation_exposure`
(pure, over typed facts) says per generation: its quorum and which keys can still
sign, its coins, the live channels committed to it (count, local balance, per node)
and the migration sessions in flight. :func:`exposure_findings` turns an older
generation's holdings into the ``generation-exposure`` check:

- ``coins`` / ``channels`` (warning): coins to migrate, channels that pay the old keys
  when they close;
- ``unsignable`` (critical): the generation's quorum can no longer sign (keys removed
  as lost or exposed): its coins can be saved only by a recovery path, which
  l2custody does not have; its open channels should be force closed before a
  cooperative close pays it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l2custody.custody.report.snapshot import ChannelFacts, Finding

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.generations import GenerationInfo, KeyInfo

CHECK = "generation-exposure"
#: the channel states whose close is still to come (a closing channel's coin shows up as a coin)
_COMMITTED_STATES = frozenset({"pending_open", "open"})


@dataclass(frozen=True)
class MigrationFacts:
    """A migration session in flight: ``from_generation``'s coins moving to a newer one."""

    session: str
    state: str
    from_generation: int
    amount_sat: int  # what it pays the newer generation
    coins: int = 1  # how many of the generation's coins it spends


@dataclass(frozen=True)
class GenerationExposure:
    """One wallet generation: its quorum, its coins, the live channels that close to it."""

    generation: int
    current: bool
    threshold: int
    keys: tuple[KeyInfo, ...]
    balance_sat: int
    coins: int
    channels: int = 0
    channel_local_sat: int = 0
    by_node: dict[str, tuple[int, int]] = field(default_factory=dict)  # node -> (channels, local sat)
    migrations: tuple[MigrationFacts, ...] = ()

    @property
    def usable_keys(self) -> int:
        return sum(1 for k in self.keys if k.usable)

    @property
    def can_sign(self) -> bool:
        """Whether enough keys remain (not removed by a later rotation) to reach the threshold."""
        return self.usable_keys >= self.threshold

    @property
    def exposed(self) -> bool:
        """An older generation still holding coins or committed channels."""
        return not self.current and bool(self.coins or self.channels)

    def signers(self) -> list[str]:
        """Who can still sign for it: registered signer names (a bare fingerprint when none)."""
        return [k.signer or k.fingerprint for k in self.keys if k.usable]

    def quorum(self) -> str:
        """``2 of alice, bob``: what a signature of this generation takes."""
        return f"{self.threshold} of {', '.join(self.signers()) or 'no usable key'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "current": self.current,
            "threshold": self.threshold,
            "keys": [
                {
                    "fingerprint": k.fingerprint,
                    "signer": k.signer,
                    "usable": k.usable,
                    "removed_in": k.removed_in,
                    "removed_reason": k.removed_reason,
                }
                for k in self.keys
            ],
            "usable_keys": self.usable_keys,
            "signers": self.signers(),
            "can_sign": self.can_sign,
            "coins": self.coins,
            "balance_sat": self.balance_sat,
            "channels": self.channels,
            "channel_local_sat": self.channel_local_sat,
            "nodes": {n: {"channels": c, "local_sat": v} for n, (c, v) in sorted(self.by_node.items())},
            "migrations": [m.__dict__ for m in self.migrations],
            "exposed": self.exposed,
        }


def generation_exposure(
    generations: Sequence[GenerationInfo],
    channels: Iterable[ChannelFacts],
    migrations: Sequence[MigrationFacts] = (),
) -> tuple[GenerationExposure, ...]:
    """Per generation (oldest first): the live channels whose close address is one of
    its addresses, next to its quorum and coins (pure)."""
    counts: dict[int, dict[str, list[int]]] = {}
    for ch in channels:
        if ch.close_generation is None or ch.state not in _COMMITTED_STATES:
            continue
        totals = counts.setdefault(ch.close_generation, {}).setdefault(ch.node, [0, 0])
        totals[0] += 1
        totals[1] += ch.local_balance_sat
    out = []
    for g in generations:
        nodes = {n: (c, v) for n, (c, v) in counts.get(g.generation, {}).items()}
        out.append(
            GenerationExposure(
                g.generation,
                g.current,
                g.threshold,
                g.keys,
                g.balance_sat,
                g.coins,
                sum(c for c, _ in nodes.values()),
                sum(v for _, v in nodes.values()),
                nodes,
                tuple(m for m in migrations if m.from_generation == g.generation),
            )
        )
    return tuple(out)


def exposure_findings(exposure: Sequence[GenerationExposure]) -> list[Finding]:
    """The ``generation-exposure`` findings: one per kind per older generation holding something."""
    newest = next((e.generation for e in exposure if e.current), None)
    findings = []
    for e in exposure:
        if not e.exposed:
            continue
        subject = f"generation {e.generation}"
        if not e.can_sign:
            findings.append(Finding(CHECK, subject, _unsignable(e), kind="unsignable"))
            continue
        if e.coins:
            findings.append(Finding(CHECK, subject, _coins(e, newest), kind="coins"))
        if e.channels:
            findings.append(Finding(CHECK, subject, _channels(e), kind="channels"))
    return findings


def _sat(value: int) -> str:
    return f"{value:,} sat"


def _nodes(e: GenerationExposure) -> str:
    return ", ".join(f"{n} ({c})" for n, (c, _) in sorted(e.by_node.items()))


def _coins(e: GenerationExposure, newest: int | None) -> str:
    where = f"generation {newest}" if newest is not None else "the newest generation"
    held = f"generation {e.generation} (an older key set) holds {e.coins} coin(s), {_sat(e.balance_sat)}"
    migrate = f"`l2custody wallet migrate --generation {e.generation}`, signed by {e.quorum()}"
    if not e.migrations:
        return f"{held}: move them to {where} with {migrate}"
    sessions = ", ".join(f"{m.session} ({m.state}, {_sat(m.amount_sat)})" for m in e.migrations)
    moving = sum(m.coins for m in e.migrations)
    text = (
        f"{held}; {moving} of them are on their way to {where} in migration session(s) {sessions}: "
        f"have them signed by {e.quorum()} and broadcast (`l2custody psbt export SESSION --out FILE`, "
        "`l2custody psbt sign FILE --signer NAME`, `l2custody psbt broadcast FILE`)"
    )
    if moving < e.coins:
        text += f"; move the other {e.coins - moving} with {migrate}"
    return text


def _channels(e: GenerationExposure) -> str:
    return (
        f"{e.channels} channel(s) with {_sat(e.channel_local_sat)} local balance on node(s) {_nodes(e)} commit "
        f"their cooperative close to generation {e.generation}, an older key set: a close pays it, and moving "
        f"those coins on takes {e.quorum()} (`l2custody watch` prepares the migration PSBT). "
        "To end the exposure, close them and open new channels (`l2custody channel close CHAN`, "
        f"`l2custody channel open`), or keep generation {e.generation}'s keys until they close"
    )


def _unsignable(e: GenerationExposure) -> str:
    removed = ", ".join(
        f"{k.signer or k.fingerprint} ({k.removed_reason or 'removed'})" for k in e.keys if not k.usable
    )
    text = (
        f"generation {e.generation}'s quorum can no longer sign: {e.usable_keys} of its keys can sign and "
        f"{e.threshold} are needed (removed: {removed})."
    )
    if e.coins:
        text += (
            f" Its {e.coins} coin(s), {_sat(e.balance_sat)}, can be saved only by a recovery path, which "
            "l2custody does not have yet (a separate feature): do not count on them."
        )
    if e.channels:
        text += (
            f" {e.channels} channel(s) with {_sat(e.channel_local_sat)} local balance on node(s) {_nodes(e)} "
            "pay it on a cooperative close: force close them before the peer closes them cooperatively "
            "(`l2custody channel close CHAN --force`); a force close pays the node wallet, and "
            "`l2custody sweep NODE` brings it to the multisig."
        )
    return text
