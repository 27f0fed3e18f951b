"""Sweeping lnd's own wallet (force-close proceeds land there) to an address.

The sweep spends every confirmed UTXO of the default account to one output
and leaves ``max(keep, lnd's anchor reserve)`` as change in lnd's wallet:
lnd's ``FundPsbt`` with an explicit template (inputs = all confirmed coins,
output = destination), signed by ``FinalizePsbt`` and published by
``PublishTransaction``. A dry run funds the template (so the figures are
lnd's own), then releases the leases: nothing is sent or stays locked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import grpc

from l2custody.amounts import DUST_SAT
from l2custody.backends.base import SweepResult
from l2custody.errors import InsufficientFunds, UsageError

# Worst-case weight units per input by lnrpc.AddressType (73-byte signatures, as
# lnd's own estimator): p2wkh, np2wkh, (unused p2wkh, unused np2wkh), p2tr, (unused p2tr)
_INPUT_WEIGHT = {0: 273, 1: 365, 2: 273, 3: 365, 4: 230, 5: 230}
_CHANGE_WEIGHT = 4 * 43  # a p2tr change output, the largest lnd makes


def _varint_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5


def estimate_vsize(input_types: list[int], dest_script_len: int, with_change: bool) -> int:
    """The sweep's vsize, counted like lnd does (never below what lnd will pay for)."""
    outputs = 2 if with_change else 1
    weight = 4 * (4 + 4 + _varint_len(len(input_types)) + _varint_len(outputs)) + 2
    weight += sum(_INPUT_WEIGHT.get(t, 365) for t in input_types)
    weight += 4 * (8 + 1 + dest_script_len) + (_CHANGE_WEIGHT if with_change else 0)
    return -(-weight // 4)


def sweep(
    node: str,
    stubs: tuple[Any, Any, Any, Any],
    timeout: float,
    publish: Callable[[bytes, str], str],
    address: str,
    *,
    keep_sat: int | None,
    fee_rate: float | None,
    dry_run: bool,
) -> SweepResult:
    """Sweep lnd ``node``'s confirmed coins to ``address`` (see the module docstring).
    ``stubs``: lightning_pb2, its stub, walletkit_pb2, its stub; ``publish(raw, label)``
    publishes the signed transaction and returns its txid."""
    from embit.script import address_to_scriptpubkey

    from l2custody.wallet.psbt import load_psbt

    try:
        dest_script = address_to_scriptpubkey(address).data
    except Exception:
        raise UsageError(f"{address!r} is not a bitcoin address") from None
    ln, _, wk, wkstub = stubs
    t = timeout
    utxos = list(
        wkstub.ListUnspent(wk.ListUnspentRequest(min_confs=1, max_confs=2**31 - 1, account="default"), timeout=t).utxos
    )
    if not utxos:
        raise InsufficientFunds(f"node {node!r} has no confirmed coins in its wallet; nothing to sweep")
    required = wkstub.RequiredReserve(
        wk.RequiredReserveRequest(additional_public_channels=0), timeout=t
    ).required_reserve
    keep = max(keep_sat or 0, required)
    if fee_rate is None:
        fee_rate = wkstub.EstimateFee(wk.EstimateFeeRequest(conf_target=6), timeout=t).sat_per_kw * 4 / 1000
    rate = max(1, math.ceil(fee_rate))
    total = sum(u.amount_sat for u in utxos)
    # Always with room for a change output: lnd sizes the fee with one before it
    # decides the change is dust (and then leaves the few sats to the fee).
    fee_estimate = math.ceil(estimate_vsize([u.address_type for u in utxos], len(dest_script), True) * rate)
    amount = total - keep - fee_estimate
    if amount < DUST_SAT:
        raise InsufficientFunds(
            f"node {node!r} has {total} sat confirmed; after keeping {keep} sat "
            f"(anchor reserve {required} sat) and about {fee_estimate} sat fee there is nothing to sweep"
        )
    outpoints = [ln.OutPoint(txid_str=u.outpoint.txid_str, output_index=u.outpoint.output_index) for u in utxos]

    def fund(amount: int) -> tuple[Any, int]:
        template = wk.TxTemplate(inputs=outpoints, outputs={address: amount})
        req = wk.FundPsbtRequest(raw=template, sat_per_vbyte=rate, min_confs=1, spend_unconfirmed=False)
        funded = wkstub.FundPsbt(req, timeout=t)
        index = funded.change_output_index
        return funded, load_psbt(funded.funded_psbt).tx.vout[index].value if index >= 0 else 0

    funded, kept = fund(amount)
    if kept < keep:  # lnd's fee came out above our estimate: give it the difference
        _release(wkstub, wk, funded.locked_utxos, t)
        amount -= keep - kept
        if amount < DUST_SAT:
            raise InsufficientFunds(f"node {node!r}: nothing left to sweep after keeping {keep} sat")
        funded, kept = fund(amount)
    done = False
    try:
        inputs = tuple(f"{u.outpoint.txid_str}:{u.outpoint.output_index}" for u in utxos)
        result = SweepResult(address, amount, load_psbt(funded.funded_psbt).fee(), kept, inputs, dry_run)
        if not dry_run:
            req = wk.FinalizePsbtRequest(funded_psbt=funded.funded_psbt)
            raw = wkstub.FinalizePsbt(req, timeout=t).raw_final_tx
        done = True
    finally:
        if dry_run or not done:
            _release(wkstub, wk, funded.locked_utxos, t)
    if dry_run:
        return result
    txid = publish(raw, "l2custody sweep")
    return SweepResult(address, amount, result.fee_sat, kept, inputs, False, txid)


def _release(wkstub: Any, wk: Any, leases: Any, timeout: float) -> None:
    for lease in leases:
        try:
            wkstub.ReleaseOutput(wk.ReleaseOutputRequest(id=lease.id, outpoint=lease.outpoint), timeout=timeout)
        except grpc.RpcError:
            pass  # leases expire on their own (10 minutes)
