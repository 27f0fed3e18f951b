"""Transaction size and fee arithmetic for P2WSH k-of-n multisig spends.

Sizes are in weight units (WU); ``vsize = ceil(weight / 4)``; a fee at a rate
of ``r`` sat/vB is ``ceil(r * vsize)``, the way Bitcoin Core rounds. Input
sizes are worst-case estimates (every signature 72 bytes with its sighash
byte), so a fee computed here never pays less than the rate asked for; the
real transaction is at most a few vbytes smaller.
"""

from __future__ import annotations

import math

#: nSequence that signals replace-by-fee (BIP-125) and allows a locktime.
RBF_SEQUENCE = 0xFFFFFFFD
#: Longest DER signature with low S (71 bytes) plus the sighash byte.
MAX_SIGNATURE_SIZE = 72
#: Bitcoin Core's default dust relay fee, in sat per kvB.
DUST_RELAY_FEE_PER_KVB = 3000


def varint_size(n: int) -> int:
    """Bytes of Bitcoin's CompactSize encoding of ``n``."""
    if n < 0xFD:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def multisig_witness_script_size(n: int, threshold: int = 1) -> int:
    """Bytes of ``OP_k <33-byte key> x n OP_n OP_CHECKMULTISIG`` (k or n above 16 take a 2-byte push)."""

    def number(v: int) -> int:
        return 1 if v <= 16 else 2

    return number(threshold) + 34 * n + number(n) + 1


def multisig_input_weight(threshold: int, n: int) -> int:
    """Worst-case weight of one P2WSH k-of-n input, witness included.

    Non-witness part: outpoint (36) + empty scriptSig (1) + nSequence (4),
    times 4. Witness: item count, the empty dummy for CHECKMULTISIG's
    off-by-one, ``threshold`` signatures, and the witness script.
    """
    script = multisig_witness_script_size(n, threshold)
    witness = varint_size(threshold + 2) + 1 + threshold * (1 + MAX_SIGNATURE_SIZE) + varint_size(script) + script
    return 4 * (36 + 1 + 4) + witness


def output_weight(script_len: int) -> int:
    """Weight of one output: value (8) + script length + script, times 4."""
    return 4 * (8 + varint_size(script_len) + script_len)


def tx_weight(input_weights: list[int], output_script_lens: list[int], segwit: bool = True) -> int:
    """Weight of a whole transaction from its inputs' weights and outputs' script lengths."""
    base = 4 + varint_size(len(input_weights)) + varint_size(len(output_script_lens)) + 4
    weight = 4 * base + sum(input_weights) + sum(output_weight(n) for n in output_script_lens)
    if segwit:
        weight += 2  # marker and flag
    return weight


def vsize(weight: int) -> int:
    """Virtual size in vbytes: weight / 4 rounded up."""
    return (weight + 3) // 4


def fee_for_weight(weight: int, fee_rate: float) -> int:
    """Fee in sats for ``weight`` at ``fee_rate`` sat/vB, rounded up to a whole sat."""
    return fee_for_vsize(vsize(weight), fee_rate)


def fee_for_vsize(vbytes: int, fee_rate: float) -> int:
    """Fee in sats for ``vbytes`` at ``fee_rate`` sat/vB, rounded up (1e-9 slack for float noise)."""
    return max(0, math.ceil(vbytes * fee_rate - 1e-9))


def dust_threshold(script_pubkey: bytes) -> int:
    """Smallest output value Bitcoin Core relays for this script (its GetDustThreshold).

    330 sat for P2WSH/P2TR, 294 for P2WPKH, 546 for P2PKH, 540 for P2SH;
    0 for OP_RETURN outputs, which are unspendable by design.
    """
    spk = bytes(script_pubkey)
    if spk[:1] == b"\x6a":
        return 0
    size = 8 + varint_size(len(spk)) + len(spk)
    is_witness = 4 <= len(spk) <= 42 and (spk[0] == 0 or 0x51 <= spk[0] <= 0x60) and spk[1] + 2 == len(spk)
    size += (32 + 4 + 1 + 107 // 4 + 4) if is_witness else (32 + 4 + 1 + 107 + 4)
    return size * DUST_RELAY_FEE_PER_KVB // 1000


def cost_of_change(
    fee_rate: float, change_output_weight: int, change_input_weight: int, long_term_fee_rate: float | None = None
) -> int:
    """What a change output costs over its life: creating it now and spending it later.

    Used two ways that must agree: coin selection accepts a changeless
    solution that overshoots the target by at most this much, and
    build_psbt refuses to silently give more than this (plus dust) to the
    miners when the caller asked for no change.
    """
    later = fee_rate if long_term_fee_rate is None else long_term_fee_rate
    return fee_for_weight(change_output_weight, fee_rate) + fee_for_weight(change_input_weight, later)
