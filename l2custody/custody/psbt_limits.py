"""What every PSBT a node is asked to sign must respect before its outputs are even looked
at: the sighash the node would sign with, and the fee. Shared by the two in-node
enforcers: the CLN plugin (``signpsbt``/``sendpsbt``) and lnd's ``node enforce``
(``SignPsbt``/``FinalizePsbt``).

- **Sighash.** lightningd signs each input with the sighash its PSBT field asks for
  (``PSBT_IN_SIGHASH_TYPE``). With ``NONE``, ``SINGLE`` or ``ANYONECANPAY`` the signature
  does not commit to all outputs (or inputs), so whoever holds the signed PSBT can re-target
  the outputs the plugin checked. Only the default (absent, ``SIGHASH_DEFAULT`` = 0 for
  taproot) and ``SIGHASH_ALL`` (1) pass.
- **Fee.** inputs minus outputs, under the wallet's ``[policy] max_fee_sat`` and
  ``max_fee_rate``: an output can pay our multisig while the rest of the inputs go to the
  miner. Every input must state its amount (``witness_utxo``, or ``non_witness_utxo`` whose
  txid matches), else the fee is unknown and the PSBT is refused. The rate is taken over the
  largest plausible size of the unsigned inputs (P2TR, P2WPKH, P2WSH multisig sized as the
  wallet sizes them; anything else generously), so it never overstates the rate; the
  absolute cap is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from l2custody.amounts import format_sats
from l2custody.errors import PolicyViolation
from l2custody.wallet import size

SIGHASH_DEFAULT = 0
SIGHASH_ALL = 1
ALLOWED_SIGHASH = (SIGHASH_DEFAULT, SIGHASH_ALL)

#: Largest witness of an input we cannot size exactly (a 15-of-15 P2WSH multisig is ~1.6 kB).
_UNKNOWN_WITNESS = 4_000


def sighash_name(value: int) -> str:
    base = {0: "DEFAULT", 1: "ALL", 2: "NONE", 3: "SINGLE"}.get(value & 0x1F, f"0x{value & 0x1F:02x}")
    return f"SIGHASH_{base}" + ("|ANYONECANPAY" if value & 0x80 else "") + f" (0x{value:02x})"


def sighash_problem(psbt: Any) -> str | None:
    """Why lightningd's signature over ``psbt`` would not commit to the whole transaction."""
    for i, pin in enumerate(psbt.inputs):
        value = pin.sighash_type
        if value is not None and int(value) not in ALLOWED_SIGHASH:
            return (
                f"input {i} asks for {sighash_name(int(value))}: a signature that does not commit to every "
                "input and output lets the outputs be changed after signing; only SIGHASH_ALL (or the "
                "default) is signed. Remove the sighash type from the PSBT"
            )
    return None


@dataclass(frozen=True)
class Fee:
    """A PSBT's fee, and its rate over the largest plausible vsize."""

    fee: int
    vsize: int

    @property
    def rate(self) -> float:
        return self.fee / self.vsize if self.vsize else float(self.fee)


def _amount(i: int, pin: Any) -> int:
    if pin.witness_utxo is not None:
        return int(pin.witness_utxo.value)
    prev = pin.non_witness_utxo
    if prev is not None and prev.txid() == pin.txid and pin.vout < len(prev.vout):
        return int(prev.vout[pin.vout].value)
    raise _Unknown(
        f"input {i} does not state the amount it spends (no witness_utxo, no matching non_witness_utxo), "
        "so the fee cannot be checked"
    )


class _Unknown(Exception):
    pass


def _input_weight(pin: Any) -> int:
    """The input's weight if finalized, else the largest its witness plausibly grows to."""
    base = 4 * (36 + 1 + 4)
    if pin.final_scriptwitness is not None:
        script_sig = pin.final_scriptsig.serialize() if pin.final_scriptsig is not None else b"\x00"
        return 4 * (36 + len(script_sig) + 4) + len(pin.final_scriptwitness.serialize())
    script = bytes(pin.witness_utxo.script_pubkey.data) if pin.witness_utxo is not None else b""
    if len(script) == 34 and script[:2] == b"\x51\x20":  # P2TR key path: one 65-byte signature
        return base + 1 + 1 + 65
    if len(script) == 22 and script[:2] == b"\x00\x14":  # P2WPKH: signature and key
        return base + 1 + 1 + size.MAX_SIGNATURE_SIZE + 1 + 33
    multisig = _multisig(pin.witness_script)
    if multisig is not None:  # P2WSH k-of-n: its worst-case witness
        return size.multisig_input_weight(*multisig)
    return base + _UNKNOWN_WITNESS


def _multisig(witness_script: Any) -> tuple[int, int] | None:
    """(k, n) of an ``OP_k <keys> OP_n OP_CHECKMULTISIG`` witness script."""
    data = bytes(witness_script.data) if witness_script is not None else b""
    if len(data) < 37 or data[-1] != 0xAE or not (0x51 <= data[0] <= 0x60 and 0x51 <= data[-2] <= 0x60):
        return None
    k, n = data[0] - 0x50, data[-2] - 0x50
    return (k, n) if k <= n and len(data) == size.multisig_witness_script_size(n) else None


def psbt_fee(psbt: Any) -> Fee:
    """The fee; raises PolicyViolation when it cannot be known or is negative."""
    try:
        total_in = sum(_amount(i, pin) for i, pin in enumerate(psbt.inputs))
    except _Unknown as exc:
        raise PolicyViolation(str(exc)) from None
    total_out = sum(int(out.value) for out in psbt.outputs)
    if total_out > total_in:
        raise PolicyViolation(
            f"the outputs ({format_sats(total_out)}) exceed the inputs ({format_sats(total_in)}); "
            "an input's stated amount is wrong"
        )
    weight = size.tx_weight(
        [_input_weight(pin) for pin in psbt.inputs], [len(out.script_pubkey.data) for out in psbt.outputs]
    )
    return Fee(total_in - total_out, size.vsize(weight))


def fee_problem(psbt: Any, policy: Any) -> str | None:
    """Why the PSBT's fee breaks ``policy`` (a ``wallet.policy.Policy``), or None."""
    try:
        fee = psbt_fee(psbt)
        policy.check_fee(fee.fee, fee.rate)
    except PolicyViolation as exc:
        return exc.message
    return None
