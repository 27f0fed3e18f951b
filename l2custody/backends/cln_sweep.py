"""Sweeping Core Lightning's own wallet (force-close proceeds land there) to an address.

lightningd keeps an emergency reserve (``min-emergency-msat``, 25000 sat by
default) in its wallet while it has anchor channels, to fee-bump their
closes: ``withdraw ... all`` leaves exactly that as change by itself. When the
operator wants to keep more (``keep_sat``), the sweep sends a computed amount
from all confirmed coins and the rest stays as change.

The figures come from ``fundpsbt`` with ``reserve: 0`` (lightningd's own coin
selection and fee, nothing locked), so a dry run shows what the real sweep
(``withdraw``, which signs and broadcasts) will do.
"""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING

from l2custody.backends.base import SweepResult
from l2custody.backends.cln_convert import sat
from l2custody.backends.cln_rpc import CallTimeout
from l2custody.errors import BroadcastUnknown, InsufficientFunds, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.backends.cln import ClnBackend

DUST_SAT = 546
CHANGE_WEIGHT = 4 * 43  # lightningd's change is a p2tr output


def feerate_param(fee_rate: float | None) -> str:
    """sat/vB -> lightningd's feerate string (per kilo-weight, at least its 253
    floor); None -> "normal" (its own estimate)."""
    if fee_rate is None:
        return "normal"
    if fee_rate <= 0:
        raise UsageError(f"fee rate must be positive, got {fee_rate} sat/vB")
    return f"{max(253, math.ceil(fee_rate * 250))}perkw"


def _output_weight(script: bytes) -> int:
    return 4 * (8 + 1 + len(script))


def _outputs(psbt_b64: str) -> list[tuple[bytes, int]]:
    from embit.psbt import PSBT

    tx = PSBT.parse(base64.b64decode(psbt_b64)).tx
    return [(o.script_pubkey.data, o.value) for o in tx.vout]


def _inputs(psbt_b64: str) -> list[str]:
    from embit.psbt import PSBT

    tx = PSBT.parse(base64.b64decode(psbt_b64)).tx
    return [f"{i.txid.hex()}:{i.vout}" for i in tx.vin]


def sweep(backend: ClnBackend, address: str, *, keep_sat: int | None, fee_rate: float | None,
          dry_run: bool) -> SweepResult:
    from embit.script import address_to_scriptpubkey

    try:
        dest = address_to_scriptpubkey(address).data
    except Exception:
        raise UsageError(f"{address!r} is not a bitcoin address") from None
    if keep_sat is not None and keep_sat < 0:
        raise UsageError(f"--keep must not be negative, got {keep_sat} sat")
    funds = backend.call("listfunds", {}, action="list the node wallet")
    coins = {f"{o['txid']}:{o['output']}": sat(o.get("amount_msat")) for o in funds.get("outputs") or []
             if o.get("status") == "confirmed" and not o.get("reserved")}
    if not coins:
        raise InsufficientFunds(f"node {backend.name!r} has no confirmed, unreserved coins in its wallet; nothing to sweep")
    total = sum(coins.values())
    reserve = backend.anchor_reserve().required_sat
    keep = max(keep_sat or 0, reserve)
    feerate = feerate_param(fee_rate)

    # Everything to one output: lightningd adds its emergency change by itself. reserve 0: nothing locked.
    everything = backend.call("fundpsbt", {"satoshi": "all", "feerate": feerate, "startweight": _output_weight(dest),
                                           "minconf": 1, "reserve": 0, "excess_as_change": False},
                              action="size the sweep")
    change_all = sum(v for _, v in _outputs(everything["psbt"]))
    excess = sat(everything["excess_msat"])
    if keep <= change_all:
        amount, send = excess, "all"
    else:  # keep more than lightningd would: one change output of at least `keep`
        per_kw = int(everything["feerate_per_kw"])
        extra = 0 if change_all else math.ceil(CHANGE_WEIGHT * per_kw / 1000)
        amount = excess - (keep - change_all) - extra
        send = amount
    if amount < DUST_SAT:
        raise InsufficientFunds(
            f"node {backend.name!r} has {total} sat confirmed; after keeping {keep} sat "
            f"(emergency reserve {reserve} sat) and the fee there is nothing to sweep"
        )
    spent = _inputs(everything["psbt"])
    fee = sum(coins.get(p, 0) for p in spent) - change_all - excess
    preview = SweepResult(address, amount, fee, total - amount - fee, tuple(spent), True)
    if dry_run:
        return preview
    params = {"destination": address, "satoshi": send, "feerate": feerate, "minconf": 1}
    if send != "all":
        params["utxos"] = spent  # exactly the coins the figures were computed for
    try:
        result = backend.call("withdraw", params, action="sweep the node wallet")
    except CallTimeout:
        raise BroadcastUnknown(
            f"node {backend.name!r} did not answer the sweep (withdraw) in time: it may or may not "
            "have broadcast it. Check the node's `listfunds` / the chain before sweeping again."
        ) from None
    outputs = _outputs(result["psbt"])
    sent = sum(v for s, v in outputs if s == dest)
    inputs = _inputs(result["psbt"])
    fee = sum(coins.get(p, 0) for p in inputs) - sum(v for _, v in outputs)
    return SweepResult(address, sent, fee, total - sent - fee, tuple(inputs), False, result["txid"])
