"""Judging a closing transaction: does it bring our channel balance back to the multisig?

Pure (no network, no store): the caller hands over the raw transaction, the
channel's funding outpoint, the address the close was committed to, the
scripts of our descriptor and what the node says was ours. Invariant 4 of
docs/architecture.md is decided here; ``close.py`` records the verdict.

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from l2custody.amounts import DUST_SAT
from l2custody.errors import UsageError

#: Below this our side of a channel has no output in a closing transaction
#: (BOLT 3 trims outputs under the dust limit; 330 sat for P2WSH, 546 for P2PKH).


@dataclass(frozen=True)
class PaidOutput:
    """One output of the closing transaction."""

    index: int
    value: int
    address: str | None
    script: bytes
    ours: bool
    change: bool | None = None
    derivation_index: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "value": self.value,
            "address": self.address,
            "ours": self.ours,
            "derivation": (
                None
                if self.derivation_index is None
                else f"{'change' if self.change else 'receive'}/{self.derivation_index}"
            ),
        }


@dataclass(frozen=True)
class CloseVerdict:
    """What the closing transaction does. ``ok`` is the custody answer; ``problem``
    says, when not ok, what went wrong and what to do."""

    txid: str
    spends_funding: bool
    outputs: tuple[PaidOutput, ...]
    expected_address: str | None
    due_sat: int | None
    ok: bool
    problem: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ours(self) -> tuple[PaidOutput, ...]:
        return tuple(o for o in self.outputs if o.ours)

    @property
    def returned_sat(self) -> int:
        return sum(o.value for o in self.ours)

    @property
    def main_output(self) -> PaidOutput | None:
        """Our output paying the expected address (else our largest one)."""
        ours = self.ours
        for o in ours:
            if self.expected_address and o.address == self.expected_address:
                return o
        return max(ours, key=lambda o: o.value) if ours else None

    def to_dict(self) -> dict[str, object]:
        return {
            "txid": self.txid,
            "spends_funding": self.spends_funding,
            "expected_address": self.expected_address,
            "due_sat": self.due_sat,
            "returned_sat": self.returned_sat,
            "ok": self.ok,
            "problem": self.problem,
            "notes": list(self.notes),
            "outputs": [o.to_dict() for o in self.outputs],
        }


def judge_closing_tx(
    raw_tx: bytes,
    funding_outpoint: str,
    *,
    network: str,
    our_scripts: Mapping[bytes, tuple[bool, int]],
    expected_address: str | None,
    due_sat: int | None,
) -> CloseVerdict:
    """Decide whether ``raw_tx`` closes the channel at ``funding_outpoint`` into the multisig.

    ``our_scripts`` maps our descriptor's scriptPubKeys to (change, index).
    ``due_sat`` is what the node says was ours at the close (lnd's settled
    balance, or our local balance when the close was requested); None when
    unknown. The close is ok when the transaction spends the funding output
    and either pays an output of ours (the expected address or another of
    our addresses, noted) or nothing was due (below dust). Anything else is
    a custody problem: our balance went somewhere else.
    """
    from embit.transaction import Transaction

    from l2custody.wallet.addresses import script_to_address

    try:
        tx = Transaction.parse(raw_tx)
    except Exception:
        raise UsageError("the closing transaction could not be parsed; check the chain source") from None
    txid = tx.txid().hex()
    want_txid, _, want_vout = funding_outpoint.partition(":")
    spends = any(vin.txid.hex() == want_txid and vin.vout == int(want_vout or -1) for vin in tx.vin)
    outputs = []
    for i, out in enumerate(tx.vout):
        script = out.script_pubkey.data
        where = our_scripts.get(script)
        outputs.append(
            PaidOutput(
                index=i,
                value=out.value,
                address=script_to_address(script, network),
                script=script,
                ours=where is not None,
                change=where[0] if where else None,
                derivation_index=where[1] if where else None,
            )
        )
    notes: list[str] = []
    if not spends:
        return CloseVerdict(
            txid,
            False,
            tuple(outputs),
            expected_address,
            due_sat,
            False,
            f"transaction {txid} does not spend the channel's funding output {funding_outpoint}; "
            "it is not this channel's close. Check the closing txid the node reports "
            "(`l2custody channel show`).",
        )
    ours = [o for o in outputs if o.ours]
    paid_expected = any(o.address == expected_address for o in ours) if expected_address else False
    if ours and expected_address and not paid_expected:
        notes.append(
            f"the close pays our address(es) {', '.join(str(o.address) for o in ours)}, "
            f"not the expected {expected_address}"
        )
    if ours:
        return CloseVerdict(txid, True, tuple(outputs), expected_address, due_sat, True, None, tuple(notes))
    if due_sat is not None and due_sat < DUST_SAT:
        notes.append(f"nothing came back: our balance ({due_sat} sat) was below the dust limit")
        return CloseVerdict(txid, True, tuple(outputs), expected_address, due_sat, True, None, tuple(notes))
    foreign = ", ".join(f"{o.address or o.script.hex()} ({o.value} sat)" for o in outputs)
    due = f"{due_sat} sat" if due_sat is not None else "our balance"
    return CloseVerdict(
        txid,
        True,
        tuple(outputs),
        expected_address,
        due_sat,
        False,
        f"closing transaction {txid} pays no address of the multisig: {due} went to {foreign}"
        + (f" instead of {expected_address}" if expected_address else "")
        + ". This is a custody violation. If that is the node's own wallet (a close the peer started "
        "on a channel without an upfront address), `l2custody sweep NODE` brings it to the multisig; "
        "otherwise find out who controls the address (an upfront script set outside l2custody?).",
        tuple(notes),
    )
