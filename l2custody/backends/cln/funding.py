"""Core Lightning funding details that are not plain RPC calls.

``finalized_from_block`` rebuilds the finalized funding PSBT of a channel from
the block that confirmed it. The CLN backend uses it to repair a channel that
lightningd still marks "funding withheld" (v25.12+) although its funding
transaction is on chain, because someone broadcast it without ``sendpsbt``:
such a channel would be forgotten without a closing transaction when closed,
so lightningd must be handed the signed PSBT (``sendpsbt`` clears the mark;
bitcoind answers "already in chain", which lightningd counts as success).
"""

from __future__ import annotations

import io

from l2custody.errors import NodeError


def scid_position(short_channel_id: str) -> tuple[int, int]:
    """``"112x1x0"`` -> ``(block height, transaction index)``."""
    height, index, _ = short_channel_id.split("x")
    return int(height), int(index)


def finalized_from_block(psbt_b64: str, block_hex: str, tx_index: int, txid: str) -> str:
    """The funding PSBT ``psbt_b64`` (as lightningd stored it, unsigned) with every
    input's final scriptSig/witness copied from transaction ``tx_index`` of the
    raw block. NodeError if that transaction is not ``txid`` or does not spend
    the PSBT's inputs (the block or the scid is not the channel's)."""
    from embit import compact
    from embit.transaction import Transaction

    from l2custody.wallet.psbt import load_psbt

    stream = io.BytesIO(bytes.fromhex(block_hex))
    stream.read(80)  # header
    count = compact.read_from(stream)
    if tx_index >= count:
        raise NodeError(f"block has {count} transactions, no index {tx_index}; cannot find funding {txid}")
    tx = None
    for _ in range(tx_index + 1):
        tx = Transaction.read_from(stream)
    assert tx is not None
    if tx.txid().hex() != txid:
        raise NodeError(f"transaction {tx_index} of the block is {tx.txid().hex()}, not the funding {txid}")
    psbt = load_psbt(psbt_b64)
    if psbt.tx.txid().hex() != txid or len(psbt.inputs) != len(tx.vin):
        raise NodeError(f"the node's funding PSBT is not transaction {txid}; not repairing it")
    for inp, vin in zip(psbt.inputs, tx.vin):
        if vin.witness.items:
            inp.final_scriptwitness = vin.witness
        if vin.script_sig.data:
            inp.final_scriptsig = vin.script_sig
    return psbt.to_base64()
