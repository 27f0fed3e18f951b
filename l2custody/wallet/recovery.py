"""``wallet refresh`` and ``wallet recover``: the two spends a time-locked recovery wallet adds.

A recovery wallet (``wallet create --recovery KEY@BLOCKS``, wallet/miniscript.py) lets
its recovery keys spend a coin once the coin is BLOCKS old. That is the point when the
primary keys are lost, and a risk otherwise. So:

- :func:`refresh` re-spends, with the primary keys, the coins whose first recovery path
  opens within ``[recovery] refresh_margin_blocks``, to a fresh address of the wallet
  itself: the new coin's clock starts again (what Liana calls a refresh);
- :func:`recover` spends, on one recovery path, every coin that path may already spend,
  to an address the operator gives (checked by the destination policy like any spend);
  it refuses coins still locked and names the block at which each opens.

Both save an ordinary PSBT session (kinds ``refresh`` and ``recover``): ``psbt sign``
and ``psbt broadcast`` take it from there, and finalizing picks the path the signatures
and the inputs' nSequence complete (wallet/satisfy.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l2custody.errors import UsageError
from l2custody.wallet.recovery_timing import (
    CoinLock,
    describe_locked,
    due_for_refresh,
    first_opening,
    lock_of,
    split_open,
)

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store
    from l2custody.wallet.pipeline import PsbtSession
    from l2custody.wallet.service import Wallet


@dataclass(frozen=True)
class RefreshPlan:
    """A saved refresh session: ``coins`` re-spent to ``address`` (the wallet's own)."""

    session: PsbtSession
    coins: tuple[CoinLock, ...]
    address: str
    amount_sat: int
    margin: int


@dataclass(frozen=True)
class RecoveryPlan:
    """A saved recovery session on the path opening after ``delay`` blocks."""

    session: PsbtSession
    delay: int
    threshold: int
    keys: tuple[str, ...]  # master fingerprints of the path's keys
    coins: tuple[CoinLock, ...]
    locked: tuple[CoinLock, ...]  # coins this path cannot spend yet (left alone)
    address: str
    amount_sat: int


@dataclass(frozen=True)
class RefreshRecord:
    """A refresh session as the store keeps it (``psbts`` row of kind ``refresh``)."""

    id: str
    state: str
    outpoints: tuple[str, ...]  # the coins it re-spends ("txid:n")

    @property
    def open(self) -> bool:
        """Still in flight: its coins reserved, its signatures or broadcast to come."""
        from l2custody.wallet.generations import OPEN_SESSION_STATES

        return self.state in OPEN_SESSION_STATES


def refresh_records(store: Store, wallet_id: int) -> list[RefreshRecord]:
    """Every refresh session of one wallet generation so far (aborted and confirmed ones
    too), oldest first: ``report`` names those in flight, ``watch`` never prepares a coin twice."""
    from l2custody.store import stored_data
    from l2custody.wallet.psbt import load_psbt

    out = []
    rows = store.execute(
        "SELECT id, state, psbt FROM psbts WHERE kind = 'refresh' AND wallet_id = ? ORDER BY created, id",
        (wallet_id,),
    )
    for session_id, state, text in rows.fetchall():
        with stored_data(f"refresh session {session_id}"):
            psbt = load_psbt(text)
            out.append(
                RefreshRecord(str(session_id), str(state), tuple(f"{i.txid.hex()}:{i.vout}" for i in psbt.inputs))
            )
    return out


def recovery_delays(wallet: Wallet) -> tuple[int, ...]:
    """The delays of the wallet's recovery paths, shortest first (empty: no recovery path)."""
    return tuple(sorted(p.delay for p in getattr(wallet.descriptor, "recovery_paths", ())))


def coin_locks(wallet: Wallet, tip: int) -> list[CoinLock]:
    """Each unspent coin of the wallet with its first recovery path's opening (none: no paths)."""
    delays = recovery_delays(wallet)
    if not delays:
        return []
    out = []
    for u in wallet.store.utxos(wallet.record.id):
        lock = first_opening(u.outpoint, u.value, u.height, delays, tip)
        if lock is not None:
            out.append(lock)
    return out


def _need_recovery_paths(wallet: Wallet, command: str) -> tuple[int, ...]:
    delays = recovery_delays(wallet)
    if not delays:
        raise UsageError(
            f"the wallet {wallet.record.name} has no recovery path (it is {wallet.descriptor.threshold}-of-"
            f"{wallet.descriptor.n} wsh(sortedmulti)): there is nothing to {command}. A wallet with one is made "
            "with `l2custody wallet create --recovery KEY@BLOCKS`"
        )
    return delays


def refresh(
    wallet: Wallet,
    *,
    margin: int | None = None,
    fee_rate: float | None = None,
    utxos: Sequence[str] | None = None,
) -> RefreshPlan:
    """A session re-spending the coins due a refresh (or exactly ``utxos``) to the wallet
    itself with the primary path; the fee comes out of the amount."""
    from l2custody.wallet.psbt import TxOut

    delays = _need_recovery_paths(wallet, "refresh")
    margin = wallet.config.recovery.refresh_margin_blocks if margin is None else int(margin)
    if margin < 0:
        raise UsageError(f"the margin is a number of blocks (0 or more), not {margin}")
    tip = wallet.chain.tip_height()
    coins = wallet.spendable_coins(utxos)
    locks = [first_opening(c.outpoint, c.value, c.height, delays, tip) for c in coins]
    chosen = [lk for lk in locks if lk is not None] if utxos is not None else due_for_refresh(locks, margin)
    if not chosen:
        soonest = min((lk.opens_at for lk in locks if lk is not None and lk.opens_at is not None), default=None)
        when = f"; the soonest opens at block {soonest:,}" if soonest is not None else ""
        raise UsageError(
            f"no spendable coin's recovery path opens within {margin:,} blocks (the tip is {tip:,}){when}: "
            "nothing to refresh yet (`--margin` widens the window, `--utxo` picks coins)"
        )
    total = sum(c.value for c in chosen)
    destination = wallet.next_address(label="refresh")
    target = TxOut.to_address(destination.address, total, wallet.record.network)
    psbt = wallet.build_spend([target], fee_rate, [c.outpoint for c in chosen], subtract_fee_from=0)
    session = wallet.save_session(
        psbt,
        "refresh",
        details={"refresh": [c.to_dict() for c in chosen], "margin": margin, "to": destination.address},
    )
    return RefreshPlan(session, tuple(chosen), destination.address, total, margin)


def _path_for_key(wallet: Wallet, key: str) -> Any:
    """The shortest recovery path holding ``key`` (a signer name, a fingerprint or [fp/path]xpub)."""
    text = key.strip()
    names = {s.name: s.fingerprint for s in wallet.store.signers() if s.fingerprint}
    fingerprint = names.get(text) or (text[1:9].lower() if text.startswith("[") else text.lower())
    desc = wallet.descriptor
    paths = [
        p
        for p in sorted(desc.recovery_paths, key=lambda p: p.delay)
        if any(k.fingerprint == fingerprint for k in p.keys)
    ]
    if paths:
        return paths[0]
    if any(k.fingerprint == fingerprint for k in desc.primary_keys):
        raise UsageError(f"{text} is a key of the primary path, which spends at any time: use `l2custody wallet send`")
    have = "; ".join(
        f"after {p.delay} blocks: {p.threshold} of {', '.join(k.fingerprint for k in p.keys)}"
        for p in desc.recovery_paths
    )
    raise UsageError(
        f"{text!r} is no key of a recovery path (give a signer name or a master fingerprint). The paths: {have}"
    )


def recover(
    wallet: Wallet,
    *,
    key: str,
    to: str,
    fee_rate: float | None = None,
    utxos: Sequence[str] | None = None,
) -> RecoveryPlan:
    """A session spending, on the recovery path of ``key``, every coin that path may already
    spend (or exactly ``utxos``, all of which must be open) to ``to``."""
    from l2custody.wallet.addresses import address_to_script
    from l2custody.wallet.psbt import TxOut

    _need_recovery_paths(wallet, "recover")
    path = _path_for_key(wallet, key)
    address_to_script(to, wallet.record.network)  # a wrong-network or mistyped address, before the chain is asked
    tip = wallet.chain.tip_height()
    coins = wallet.spendable_coins(utxos)
    locks = [lock_of(c.outpoint, c.value, c.height, path.delay, tip) for c in coins]
    opened, locked = split_open(locks)
    if utxos is not None and locked:
        raise UsageError(
            f"the recovery path after {path.delay} blocks cannot spend these yet: {describe_locked(locked)}"
        )
    if not opened:
        raise UsageError(
            f"no coin is open to the recovery path after {path.delay} blocks yet (the tip is {tip:,}): "
            + (describe_locked(locked) if locked else "the wallet holds no spendable coin")
        )
    total = sum(c.value for c in opened)
    out = TxOut.to_address(to, total, wallet.record.network)
    if out.script_pubkey not in wallet._known_scripts():
        wallet.policy.check_destination(0, out.address, out.value, out.script_pubkey, wallet.record.network)
    psbt = wallet.build_spend([out], fee_rate, [c.outpoint for c in opened], subtract_fee_from=0, recovery=path.delay)
    session = wallet.save_session(
        psbt,
        "recover",
        details={
            "to": to,
            "delay": path.delay,
            "keys": [k.fingerprint for k in path.keys],
            "coins": [c.to_dict() for c in opened],
            "locked": [c.to_dict() for c in locked],
        },
    )
    return RecoveryPlan(
        session,
        path.delay,
        path.threshold,
        tuple(k.fingerprint for k in path.keys),
        tuple(opened),
        tuple(locked),
        out.address or to,
        total,
    )
