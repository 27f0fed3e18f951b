"""Reading the world for ``report`` and ``watch``: the wallet, every node, the sessions.

Each function turns what the wallet, a node or the store says into the typed
facts :func:`l2custody.custody.report.snapshot.build_snapshot` works on. A node that
cannot be read is not an error here: its :class:`NodeFacts` carries the
message (the report then flags it), so one dead node never hides the others.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l2custody.backends.base import Capability, ChannelInfo, NodeBackend, OnchainBalance
from l2custody.custody.report.exposure import MigrationFacts
from l2custody.custody.report.snapshot import (
    ChannelFacts,
    MultisigFacts,
    NodeFacts,
    RehearsalFacts,
    RehearsalRun,
    ReportInputs,
    SessionFacts,
    SignerRehearsal,
)
from l2custody.custody.report.timelocks import PathFacts, RecoveryFacts, RefreshFacts
from l2custody.errors import L2CustodyError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store
    from l2custody.wallet.descriptor import KeyOrigin
    from l2custody.wallet.generations import GenerationInfo
    from l2custody.wallet.service import Wallet


@dataclass(frozen=True)
class _Reading:
    """What a node said (no store involved: this may run on another thread)."""

    backend: NodeBackend
    channels: tuple[ChannelInfo, ...] = ()
    balance: OnchainBalance | None = None
    reserve: int = 0
    error: str | None = None


def _read(backend: NodeBackend, include_closed: bool = True) -> _Reading:
    """Channels, hot wallet and anchor reserve of one node, asked for at once (the node
    answers them in parallel); ``error`` set when the node could not be read."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix=f"read-{backend.name}") as pool:
        channels = pool.submit(backend.list_channels, include_closed=include_closed)
        balance = pool.submit(backend.onchain_balance)
        reserve = pool.submit(backend.anchor_reserve) if backend.supports(Capability.ANCHOR_RESERVE) else None
        try:
            return _Reading(
                backend,
                tuple(channels.result()),
                balance.result(),
                reserve.result().required_sat if reserve is not None else 0,
            )
        except L2CustodyError as exc:
            return _Reading(backend, error=exc.message)


def _facts(wallet: Wallet, reading: _Reading) -> NodeFacts:
    backend = reading.backend
    if reading.error is not None or reading.balance is None:
        return NodeFacts(backend.name, backend.kind, error=reading.error)
    facts = facts_of(wallet, reading.channels)
    return NodeFacts(backend.name, backend.kind, facts, reading.balance, reading.reserve, None, time.time())


def read_node(wallet: Wallet, backend: NodeBackend, *, include_closed: bool = True) -> NodeFacts:
    """Channels (joined with the store: close address ours? funding ours?), hot wallet
    and anchor reserve of one node; ``error`` set when the node could not be read."""
    return _facts(wallet, _read(backend, include_closed))


def facts_of(wallet: Wallet, channels: Sequence[ChannelInfo]) -> tuple[ChannelFacts, ...]:
    """ChannelInfo list -> ChannelFacts, through ``channels.view_channels`` with an
    in-memory address index (one query instead of one decode and query per channel)."""
    from l2custody.custody.channels import view_channels

    views = view_channels(wallet, channels)
    return tuple(ChannelFacts.from_view(v) for v in views)


def read_sessions(store: Store, tip: int, margin: int) -> tuple[SessionFacts, ...]:
    """Funding sessions still waiting for a signature, a broadcast or a confirmation."""
    from l2custody.custody.funding.records import list_sessions

    return tuple(SessionFacts.of(s, tip, margin) for s in list_sessions(store, include_final=False))


def rehearsal_facts(wallet: Wallet) -> RehearsalFacts:
    """The rehearsals of the wallet's current generation and, per registered signer of it,
    when it last signed a confirmed one (the store only)."""
    from l2custody.wallet.rehearsal_records import (
        RehearsalRecord,
        RehearsalState,
        confirmed_at,
        last_signed,
        latest_failure,
        rehearsals,
    )

    def run(rec: RehearsalRecord | None, at: float | None = None) -> RehearsalRun | None:
        if rec is None:
            return None
        return RehearsalRun(rec.id, rec.state.value, at or rec.updated, rec.signer_names, rec.txid, rec.error)

    records = rehearsals(wallet.store, wallet.record.id)
    confirmed = [r for r in records if r.state is RehearsalState.CONFIRMED]
    last = last_signed(records)
    desc = wallet.descriptor
    signers = tuple(
        SignerRehearsal(s.name, s.kind, s.fingerprint, last.get(s.name))
        for s in wallet.store.signers()
        if s.fingerprint and desc.contains_key(s.fingerprint)
    )
    held = {s.fingerprint for s in signers}
    return RehearsalFacts(
        wallet.record.name,
        wallet.record.generation,
        run(confirmed[-1], confirmed_at(confirmed[-1])) if confirmed else None,
        run(latest_failure(records)),
        run(next((r for r in reversed(records) if not r.state.settled), None)),
        signers,
        tuple(k.fingerprint for k in desc.keys if k.fingerprint not in held),
    )


def multisig_facts(wallet: Wallet) -> MultisigFacts:
    b = wallet.balance()
    return MultisigFacts(b.confirmed, b.unconfirmed, b.reserved, b.scanned_height)


def read_generations(store: Store) -> tuple[tuple[GenerationInfo, ...], tuple[MigrationFacts, ...]]:
    """Every wallet generation (quorum, usable keys with their signers, coins) and the
    migration sessions in flight, for the exposure section."""
    from l2custody.wallet.generations import generation_infos, migration_records, registered_fingerprints

    infos = tuple(generation_infos(store, registered_fingerprints(store)))
    moving = tuple(
        MigrationFacts(m.id, m.state, m.from_generation, m.amount_sat, len(m.outpoints))
        for m in migration_records(store)
        if m.open
    )
    return infos, moving


def read_recovery(wallet: Wallet, tip: int | None) -> RecoveryFacts | None:
    """The current generation's coins with their first recovery path's opening at ``tip``,
    and the refresh sessions in flight (the store only); None for a wallet without
    recovery paths."""
    from l2custody.wallet.recovery import coin_locks, recovery_delays, refresh_records

    if not recovery_delays(wallet):
        return None
    desc = wallet.descriptor
    names = {s.fingerprint: s.name for s in wallet.store.signers() if s.fingerprint}

    def who(keys: Sequence[KeyOrigin]) -> tuple[str, ...]:
        return tuple(names.get(k.fingerprint, k.fingerprint) for k in keys)

    locks = coin_locks(wallet, tip) if tip is not None else []
    held = {u.outpoint: u.reserved_by for u in wallet.store.utxos(wallet.record.id) if u.reserved_by is not None}
    return RecoveryFacts(
        wallet.record.name,
        tip,
        wallet.config.recovery.refresh_margin_blocks,
        desc.threshold,
        who(desc.primary_keys),
        tuple(PathFacts(p.delay, p.threshold, who(p.keys)) for p in getattr(desc, "recovery_paths", ())),
        tuple(locks),
        held,
        tuple(
            RefreshFacts(r.id, r.state, r.outpoints) for r in refresh_records(wallet.store, wallet.record.id) if r.open
        ),
    )


def read_inputs(wallet: Wallet, backends: Sequence[NodeBackend], *, sync: bool = True) -> ReportInputs:
    """Everything ``report`` needs. ``sync``: bring the wallet up to the chain tip first;
    a chain that cannot be read is reported (``chain_error``), not raised."""
    from concurrent.futures import ThreadPoolExecutor

    chain_error = None
    tip = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-nodes") as pool:
        # The nodes are read while the chain is (the store stays on this thread).
        readings = pool.submit(lambda: tuple(_read(b) for b in backends))
        try:
            if sync:
                wallet.sync()
            tip = wallet.chain.tip_height()
        except L2CustodyError as exc:
            chain_error = exc.message
        said = readings.result()
    if tip is None:
        scanned = wallet.store.scanned_tip()
        tip = scanned[0] if scanned else None
    nodes = tuple(_facts(wallet, r) for r in said)
    sessions = (
        read_sessions(wallet.store, tip, wallet.config.sessions.deadline_margin_blocks) if tip is not None else ()
    )
    generations, migrations = read_generations(wallet.store)
    return ReportInputs(
        wallet.record.name,
        wallet.config.network,
        time.time(),
        tip,
        multisig_facts(wallet),
        nodes,
        sessions,
        chain_error,
        rehearsal_facts(wallet),
        generations,
        migrations,
        read_recovery(wallet, tip),
    )
