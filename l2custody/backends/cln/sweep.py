"""Sweeping Core Lightning's own wallet (force-close proceeds land there) to an address.

lightningd keeps an emergency reserve (``min-emergency-msat``, 25000 sat by
default) in its wallet while it has anchor channels, to fee-bump their
closes: a sweep of "all" leaves exactly that as change by itself. When the
operator wants to keep more (``keep_sat``), the sweep sends a computed amount
from all confirmed coins and the rest stays as change.

The transaction is lightningd's own: ``txprepare`` (its coin selection, fee and
change; the inputs are reserved), then ``txsend`` (signs and broadcasts) or,
for a dry run or figures we do not accept, ``txdiscard`` (nothing stays
reserved). The figures shown are those of the transaction that is sent.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from l2custody.amounts import DUST_SAT
from l2custody.backends.base import AnchorReserve, SweepResult
from l2custody.backends.cln.convert import sat
from l2custody.backends.cln.rpc import CallTimeout
from l2custody.errors import BroadcastUnknown, InsufficientFunds, L2CustodyError, UsageError


class SweepingNode(Protocol):
    """What a sweep needs of the Core Lightning backend: its name, its commands and its reserve."""

    name: str

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, action: str, timeout: float | None = None
    ) -> Any: ...

    def anchor_reserve(self, additional_public_channels: int = 0) -> AnchorReserve: ...


def feerate_param(fee_rate: float | None) -> str:
    """sat/vB -> lightningd's feerate string (per kilo-weight, at least its 253
    floor); None -> "normal" (its own estimate)."""
    if fee_rate is None:
        return "normal"
    if fee_rate <= 0:
        raise UsageError(f"fee rate must be positive, got {fee_rate} sat/vB")
    return f"{max(253, math.ceil(fee_rate * 250))}perkw"


def _outputs(psbt_b64: str) -> list[tuple[bytes, int]]:
    from l2custody.wallet.psbt import load_psbt

    tx = load_psbt(psbt_b64).tx
    return [(o.script_pubkey.data, o.value) for o in tx.vout]


def _inputs(psbt_b64: str) -> list[str]:
    from l2custody.wallet.psbt import load_psbt

    tx = load_psbt(psbt_b64).tx
    return [f"{i.txid.hex()}:{i.vout}" for i in tx.vin]


class _Prepared:
    """One ``txprepare``d sweep: its figures, and the way to send or drop it."""

    def __init__(self, backend: SweepingNode, prepared: dict[str, Any], dest: bytes, coins: dict[str, int]) -> None:
        self.backend = backend
        self.txid = str(prepared["txid"])
        outputs = _outputs(prepared["psbt"])
        self.inputs = tuple(_inputs(prepared["psbt"]))
        self.amount = sum(v for s, v in outputs if s == dest)
        self.fee = sum(coins.get(p, 0) for p in self.inputs) - sum(v for _, v in outputs)
        self.kept = sum(coins.values()) - self.amount - self.fee

    def discard(self) -> None:
        try:
            self.backend.call("txdiscard", {"txid": self.txid}, action="release the sweep's coins")
        except L2CustodyError:
            pass  # lightningd releases unsent reservations on its own after a while

    def send(self) -> str:
        try:
            sent = self.backend.call("txsend", {"txid": self.txid}, action="sweep the node wallet")
        except CallTimeout:
            raise BroadcastUnknown(
                f"node {self.backend.name!r} did not answer the sweep (txsend {self.txid}) in time: it may or "
                "may not have broadcast it. Check the node's `listfunds` / the chain before sweeping again."
            ) from None
        return str(sent["txid"])


def sweep(
    backend: SweepingNode, address: str, *, keep_sat: int | None, fee_rate: float | None, dry_run: bool
) -> SweepResult:
    from embit.script import address_to_scriptpubkey

    try:
        dest = address_to_scriptpubkey(address).data
    except Exception:
        raise UsageError(f"{address!r} is not a bitcoin address") from None
    if keep_sat is not None and keep_sat < 0:
        raise UsageError(f"--keep must not be negative, got {keep_sat} sat")
    funds = backend.call("listfunds", {}, action="list the node wallet")
    coins = {
        f"{o['txid']}:{o['output']}": sat(o.get("amount_msat"))
        for o in funds.get("outputs") or []
        if o.get("status") == "confirmed" and not o.get("reserved")
    }
    if not coins:
        raise InsufficientFunds(
            f"node {backend.name!r} has no confirmed, unreserved coins in its wallet; nothing to sweep"
        )
    total = sum(coins.values())
    reserve = backend.anchor_reserve().required_sat
    keep = max(keep_sat or 0, reserve)
    feerate = feerate_param(fee_rate)

    def prepare(amount: int | str) -> _Prepared:
        params = {"outputs": [{address: amount}], "feerate": feerate, "minconf": 1, "utxos": sorted(coins)}
        return _Prepared(backend, backend.call("txprepare", params, action="prepare the sweep"), dest, coins)

    def nothing_left() -> InsufficientFunds:
        return InsufficientFunds(
            f"node {backend.name!r} has {total} sat confirmed; after keeping {keep} sat "
            f"(emergency reserve {reserve} sat) and the fee there is nothing to sweep"
        )

    tx = prepare("all")  # lightningd keeps its emergency reserve as change by itself
    for _ in range(3):  # the operator keeps more: send less (a change output adds to the fee, hence passes)
        if tx.kept >= keep:
            break
        amount = tx.amount - (keep - tx.kept)
        tx.discard()
        if amount < DUST_SAT:
            raise nothing_left()
        tx = prepare(amount)
    if tx.amount < DUST_SAT or tx.kept < keep:
        tx.discard()
        raise nothing_left()
    result = SweepResult(address, tx.amount, tx.fee, tx.kept, tx.inputs, dry_run)
    if dry_run:
        tx.discard()
        return result
    return SweepResult(address, tx.amount, tx.fee, tx.kept, tx.inputs, False, tx.send())
