"""What a signer reviews before signing: ``summarize`` a PSBT, ``verify`` it against policy.

``summarize`` never raises for a readable PSBT: it describes every input
(ours? which address index? signatures?) and output (ours? change?
foreign?), the fee, fee rate and vsize, warnings, and the problems that
``verify`` would refuse. ``verify`` is the same analysis as code, plus the
policy (or the exact expected outputs), and raises on the first problem:

- PsbtTampered: an input that is not ours; an input whose attached previous
  transaction disagrees with its witness_utxo (the segwit fee attack); key
  metadata or witness script that are not our descriptor's; a signature
  from a key not in the descriptor, with a sighash other than ALL, or that
  does not verify; an output that claims to be our change but pays
  elsewhere, or carries another wallet's change metadata (foreign change);
  an output that differs from ``expected_outputs``; a PSBT whose
  fingerprint differs from the one verified earlier;
- NetworkMismatch: global xpubs or expected addresses of another network;
- PolicyViolation: a foreign destination the policy does not allow, or a
  fee above ``max_fee_sat`` / ``max_fee_rate``.

Every message names the input or output (index, address, amount).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from embit.psbt import PSBT, DerivationPath, InputScope, OutputScope

from l2custody.amounts import format_sats
from l2custody.errors import L2CustodyError, NetworkMismatch, PsbtError, PsbtTampered
from l2custody.wallet import satisfy, size
from l2custody.wallet.addresses import (
    address_to_script,
    human_network,
    script_to_address,
)
from l2custody.wallet.descriptor import Derived
from l2custody.wallet.descriptors import WalletDescriptor
from l2custody.wallet.miniscript import RecoveryDescriptor
from l2custody.wallet.policy import Policy
from l2custody.wallet.psbt import (
    TxOut,
    check_signatures,
    final_witness_valid,
    input_utxo,
    psbt_fingerprint,
    psbt_txid,
)

#: Warn above these (the policy caps are what refuse).
HIGH_FEE_RATE = 100.0
HIGH_FEE_SHARE = 0.03


@dataclass(frozen=True)
class InputInfo:
    index: int
    txid: str
    vout: int
    value: int | None
    address: str | None
    ours: bool
    change: bool | None
    derivation_index: int | None
    signatures: int  # valid signatures (K when finalized)
    signed_by: tuple[str, ...]  # master fingerprints of the cosigners that signed
    finalized: bool
    has_prev_tx: bool


@dataclass(frozen=True)
class OutputInfo:
    index: int
    address: str | None
    value: int
    script_pubkey: str  # hex
    ours: bool
    change: bool
    derivation_index: int | None
    foreign_keys: tuple[str, ...] = ()  # fingerprints of other wallets' key origins on it

    @property
    def kind(self) -> str:
        """``change`` (our change branch), ``self`` (our receive branch) or ``foreign``."""
        if not self.ours:
            return "foreign"
        return "change" if self.change else "self"


@dataclass(frozen=True)
class PsbtSummary:
    txid: str
    fingerprint: str
    network: str
    inputs: tuple[InputInfo, ...]
    outputs: tuple[OutputInfo, ...]
    total_in: int | None
    total_out: int
    fee: int | None
    vsize: int
    fee_rate: float | None
    locktime: int
    rbf: bool
    threshold: int
    #: every input has K valid signatures (or is finalized); on a recovery wallet: a path of
    #: every input is complete (a recovery path only if the input's nSequence opens it)
    complete: bool
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def sent(self) -> int:
        """Sats leaving the wallet to foreign outputs."""
        return sum(o.value for o in self.outputs if not o.ours)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        d = asdict(self)
        for o, info in zip(d["outputs"], self.outputs, strict=True):
            o["kind"] = info.kind
        d["sent"] = self.sent
        return d


def _describe_in(i: int, txid: str, vout: int, address: str | None, value: int | None) -> str:
    amount = format_sats(value) if value is not None else "unknown amount"
    return f"input {i} ({txid}:{vout}, {address or 'unknown address'}, {amount})"


def _describe_out(j: int, address: str | None, value: int, spk: bytes) -> str:
    return f"output {j} ({address or 'script ' + spk.hex()}, {format_sats(value)})"


@dataclass
class _Findings:
    """What the checks found, in the order found: ``verify`` raises the first problem."""

    problems: list[L2CustodyError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Fees:
    total_in: int | None  # None if some input's amount is unknown
    total_out: int
    fee: int | None
    vsize: int
    fee_rate: float | None


def _claimed_addresses(desc: WalletDescriptor, derivations: Iterable[DerivationPath]) -> set[tuple[bool, int]]:
    """The (change, index) of our addresses that key origins point at (other wallets' origins are left out)."""
    matches = (desc.match_derivation(d.fingerprint, d.derivation) for d in derivations)
    return {m for m in matches if m is not None}


def _input_derived(
    desc: WalletDescriptor, psbt: PSBT, i: int, known: Mapping[bytes, tuple[bool, int]]
) -> tuple[Derived | None, str | None]:
    """Our address behind input ``i``, or (None, reason) if it is not provably ours."""
    utxo = input_utxo(psbt, i)
    if utxo is None:
        return None, "carries no witness_utxo or non_witness_utxo, so nobody can check what it spends"
    spk = utxo.script_pubkey.data
    claims = _claimed_addresses(desc, psbt.inputs[i].bip32_derivations.values())
    if len(claims) > 1:
        return None, "has key origins pointing at different addresses of this wallet"
    if claims:
        derived = desc.derive(*claims.pop())
    elif spk in known:
        derived = desc.derive(*known[spk])
    else:
        return None, "is not a coin of this wallet (its key origins are not our cosigners' keys)"
    if derived.script_pubkey != spk:
        return None, f"claims to be our address {derived.address} but spends a different script"
    return derived, None


def _is_finalized(pin: InputScope) -> bool:
    return pin.final_scriptwitness is not None and bool(pin.final_scriptwitness.items)


# --- the checks of one input --------------------------------------------------------------
def _check_previous_transaction(pin: InputScope, i: int, where: str, found: _Findings) -> None:
    """The attached previous transaction must be the one spent and agree with witness_utxo."""
    nwu = pin.non_witness_utxo
    if nwu is None:
        found.warnings.append(
            f"input {i} lacks its previous transaction (non_witness_utxo); some hardware signers refuse such inputs"
        )
        return
    if nwu.txid() != pin.txid:
        found.problems.append(
            PsbtTampered(
                f"{where}: the attached previous transaction has txid {nwu.txid().hex()}, not {pin.txid.hex()}"
            )
        )
    elif pin.witness_utxo is not None and (
        pin.vout >= len(nwu.vout)
        or nwu.vout[pin.vout].value != pin.witness_utxo.value
        or nwu.vout[pin.vout].script_pubkey != pin.witness_utxo.script_pubkey
    ):
        found.problems.append(
            PsbtTampered(
                f"{where}: witness_utxo disagrees with the previous transaction it comes from "
                "(a forged input amount would hide the real fee); refusing"
            )
        )


def _check_sighash_type(pin: InputScope, where: str, found: _Findings) -> None:
    """Only SIGHASH_ALL (or no sighash type) may be asked for."""
    if pin.sighash_type not in (None, 1):
        found.problems.append(
            PsbtTampered(f"{where} asks for sighash type {pin.sighash_type}; only SIGHASH_ALL is signed")
        )


def _check_input_is_ours(
    psbt: PSBT,
    i: int,
    desc: WalletDescriptor,
    known: Mapping[bytes, tuple[bool, int]],
    where: str,
    found: _Findings,
) -> Derived | None:
    """The input must provably spend one of our addresses; returns that address (None if not)."""
    derived, reason = _input_derived(desc, psbt, i, known)
    if derived is None:
        found.problems.append(PsbtTampered(f"{where} {reason}; refusing to sign a PSBT with inputs that are not ours"))
    return derived


def _check_witness_script(pin: InputScope, derived: Derived, where: str, found: _Findings) -> None:
    """A witness script, when given, must be our multisig script for the address spent."""
    if pin.witness_script is not None and pin.witness_script.data != derived.witness_script:
        found.problems.append(PsbtTampered(f"{where}: its witness script is not our multisig script for that address"))


def _check_input_key_origins(pin: InputScope, derived: Derived, where: str, found: _Findings) -> None:
    """Every key origin must be one of the address's keys with its exact path (the first bad one is reported)."""
    for pub, der in pin.bip32_derivations.items():
        expected = derived.bip32.get(pub.sec())
        if expected is None or (der.fingerprint, list(der.derivation)) != (expected[0], list(expected[1])):
            found.problems.append(
                PsbtTampered(
                    f"{where}: key origin {der.fingerprint.hex()} for key {pub.sec().hex()[:16]}... "
                    "is not one of this address's keys; a signer could be misled"
                )
            )
            return


def _check_final_witness(
    psbt: PSBT, i: int, derived: Derived, desc: WalletDescriptor, where: str, found: _Findings
) -> tuple[int, list[str]]:
    """A finalized input's witness must satisfy our script; returns (valid signatures, signed by)."""
    if final_witness_valid(psbt, i, derived, desc):
        return desc.threshold, ["(finalized)"]
    found.problems.append(PsbtTampered(f"{where}: its final witness does not satisfy our script"))
    return 0, []


def _check_partial_signatures(psbt: PSBT, i: int, derived: Derived, where: str, found: _Findings) -> list[str]:
    """Every partial signature must be valid (see ``check_signatures``); returns who signed validly."""
    signed_by: list[str] = []
    for check in check_signatures(psbt, i, derived):
        if check.valid:
            signed_by.append(check.fingerprint or "?")
            continue
        who = f"fingerprint {check.fingerprint}" if check.fingerprint else f"key {check.pubkey.hex()[:16]}..."
        found.problems.append(
            PsbtTampered(
                f"{where}: signature from {who} is refused: {check.reason}"
                + ("; that key is not in this wallet's descriptor" if not check.fingerprint else "")
            )
        )
    return signed_by


def _review_input(
    psbt: PSBT, i: int, desc: WalletDescriptor, known: Mapping[bytes, tuple[bool, int]], found: _Findings
) -> InputInfo:
    """Run the checks of input ``i``, in the order their problems are reported."""
    pin = psbt.inputs[i]
    utxo = input_utxo(psbt, i)
    txid, vout = pin.txid.hex(), pin.vout
    value = utxo.value if utxo is not None else None
    address = script_to_address(utxo.script_pubkey.data, desc.network) if utxo is not None else None
    where = _describe_in(i, txid, vout, address, value)
    _check_previous_transaction(pin, i, where, found)
    _check_sighash_type(pin, where, found)
    derived = _check_input_is_ours(psbt, i, desc, known, where, found)
    finalized = _is_finalized(pin)
    valid = 0
    signed_by: list[str] = []
    if derived is not None:
        _check_witness_script(pin, derived, where, found)
        _check_input_key_origins(pin, derived, where, found)
        if finalized:
            valid, signed_by = _check_final_witness(psbt, i, derived, desc, where, found)
        signers = _check_partial_signatures(psbt, i, derived, where, found)
        valid, signed_by = valid + len(signers), signed_by + signers
    return InputInfo(
        i,
        txid,
        vout,
        value,
        address,
        derived is not None,
        derived.change if derived else None,
        derived.index if derived else None,
        valid,
        tuple(signed_by),
        finalized,
        pin.non_witness_utxo is not None,
    )


# --- the checks of one output -------------------------------------------------------------
def _check_output_ownership(
    pout: OutputScope,
    desc: WalletDescriptor,
    known: Mapping[bytes, tuple[bool, int]],
    where: str,
    found: _Findings,
) -> tuple[bool, bool, int | None]:
    """(ours, change, index) of an output; key origins claiming our address for another script are refused."""
    spk = pout.script_pubkey.data
    claims = _claimed_addresses(desc, pout.bip32_derivations.values())
    if len(claims) > 1:
        found.problems.append(PsbtTampered(f"{where} has key origins pointing at different addresses of this wallet"))
        return False, False, None
    if claims:
        derived = desc.derive(*claims.pop())
        if derived.script_pubkey != spk:
            branch = "change" if derived.change else "receive"
            found.problems.append(
                PsbtTampered(
                    f"{where} claims to be our {branch} address {derived.address} (index {derived.index}) "
                    "but pays a different script: foreign change; refusing"
                )
            )
            return False, False, None
        return True, derived.change, derived.index
    if spk in known:
        change, index = known[spk]
        return True, change, index
    return False, False, None


def _warn_foreign_change(j: int, foreign_keys: tuple[str, ...], ours: bool, found: _Findings) -> None:
    """Key origins of other wallets on an output that is not ours: it looks like change but is not."""
    if foreign_keys and not ours:
        found.warnings.append(
            f"output {j} carries key origins of other wallets ({', '.join(foreign_keys)}): "
            "it looks like change but is not ours"
        )


def _warn_dust(value: int, spk: bytes, where: str, found: _Findings) -> None:
    if value < size.dust_threshold(spk):
        found.warnings.append(f"{where} is below the dust threshold; nodes will not relay the transaction")


def _review_output(
    j: int, pout: OutputScope, desc: WalletDescriptor, known: Mapping[bytes, tuple[bool, int]], found: _Findings
) -> OutputInfo:
    """Run the checks of output ``j``, in the order their problems are reported."""
    spk = pout.script_pubkey.data
    address = script_to_address(spk, desc.network)
    where = _describe_out(j, address, pout.value, spk)
    foreign_keys = tuple(
        sorted({d.fingerprint.hex() for d in pout.bip32_derivations.values() if not desc.contains_key(d.fingerprint)})
    )
    ours, change, index = _check_output_ownership(pout, desc, known, where, found)
    _warn_foreign_change(j, foreign_keys, ours, found)
    _warn_dust(pout.value, spk, where, found)
    return OutputInfo(j, address, pout.value, spk.hex(), ours, change, index, foreign_keys)


# --- the checks of the whole transaction ------------------------------------------------------
def _check_global_xpubs(psbt: PSBT, desc: WalletDescriptor, found: _Findings) -> None:
    """The cosigner xpubs the PSBT lists must be of the wallet's network (and should be its keys)."""
    for xpub, der in psbt.xpubs.items():
        key_is_main = xpub.version == b"\x04\x88\xb2\x1e"
        if key_is_main != (desc.network == "main"):
            found.problems.append(
                NetworkMismatch(
                    f"the PSBT lists cosigner key {der.fingerprint.hex()} for "
                    f"{'mainnet' if key_is_main else 'a test network'} but this wallet is on {human_network(desc.network)}"
                )
            )
        elif not desc.contains_key(der.fingerprint):
            found.warnings.append(
                f"the PSBT lists a cosigner key {der.fingerprint.hex()} that is not in this wallet's descriptor"
            )


def _input_weight(psbt: PSBT, i: int, desc: WalletDescriptor) -> int:
    """The real weight of a finalized input, else the worst case of our input: the primary path's,
    or a recovery path's when the input's nSequence is that path's delay (a recovery spend)."""
    pin = psbt.inputs[i]
    if _is_finalized(pin):
        return 4 * 41 + len(pin.final_scriptwitness.serialize())
    return desc.input_weight(_recovery_delay(psbt, i, desc))


def _recovery_delay(psbt: PSBT, i: int, desc: WalletDescriptor) -> int | None:
    """The delay of the recovery path input ``i`` was built for (its nSequence), or None."""
    if not isinstance(desc, RecoveryDescriptor):
        return None
    sequence = psbt.tx.vin[i].sequence
    return sequence if sequence in {p.delay for p in desc.recovery_paths} else None


def _input_complete(psbt: PSBT, info: InputInfo, desc: WalletDescriptor) -> bool:
    """K valid signatures (or a valid final witness); on a recovery wallet, a path the signers complete."""
    if not isinstance(desc, RecoveryDescriptor) or info.finalized:
        return info.signatures >= desc.threshold
    if info.change is None or info.derivation_index is None:
        return False
    pubkeys = desc.pubkeys_at(info.change, info.derivation_index)
    signed = {pubkeys[fp] for fp in info.signed_by if fp in pubkeys}
    tx = psbt.tx
    lock = satisfy.relative_lock(tx.vin[info.index].sequence, tx.version)
    return satisfy.satisfiable(desc.tree, pubkeys, signed, lock) is not None


def _fees(psbt: PSBT, desc: WalletDescriptor, inputs: Sequence[InputInfo], outputs: Sequence[OutputInfo]) -> _Fees:
    values = [i.value for i in inputs]
    total_out = sum(o.value for o in outputs)
    total_in = sum(v for v in values if v is not None) if all(v is not None for v in values) else None
    fee = total_in - total_out if total_in is not None else None
    in_weights = [_input_weight(psbt, i, desc) for i in range(len(psbt.inputs))]
    weight = size.tx_weight(in_weights, [len(bytes.fromhex(o.script_pubkey)) for o in outputs])
    vsize = size.vsize(weight)
    fee_rate = fee / vsize if fee is not None and vsize else None
    return _Fees(total_in, total_out, fee, vsize, fee_rate)


def _check_outputs_within_inputs(fees: _Fees, found: _Findings) -> None:
    """The outputs must not spend more than the inputs hold."""
    if fees.fee is not None and fees.fee < 0:
        found.problems.append(
            PsbtTampered(
                f"the outputs ({format_sats(fees.total_out)}) exceed the inputs ({format_sats(fees.total_in or 0)})"
            )
        )


def _warn_fee(fees: _Fees, outputs: Sequence[OutputInfo], found: _Findings) -> None:
    """Fee rates nodes will not relay, and high fees (the policy caps are what refuse)."""
    fee, fee_rate = fees.fee, fees.fee_rate
    if fee_rate is not None and 0 <= fee_rate < 1.0:
        found.warnings.append(f"fee rate {fee_rate:.2f} sat/vB is below 1 sat/vB; nodes will not relay it")
    if fee_rate is not None and fee_rate > HIGH_FEE_RATE:
        found.warnings.append(f"high fee: {fee_rate:.1f} sat/vB")
    leaving = sum(o.value for o in outputs if not o.ours) or fees.total_out
    if fee is not None and leaving and fee > HIGH_FEE_SHARE * leaving:
        found.warnings.append(
            f"high fee: {format_sats(fee)} is {100 * fee / leaving:.1f}% of the {format_sats(leaving)} sent"
        )


def _signals_rbf(psbt: PSBT) -> bool:
    return any(inp.sequence is not None and inp.sequence < 0xFFFFFFFE for inp in psbt.inputs)


def _warn_unusual_transaction(psbt: PSBT, outputs: Sequence[OutputInfo], rbf: bool, found: _Findings) -> None:
    """No replace-by-fee, several change outputs, a transaction version other than 2."""
    if not rbf:
        found.warnings.append("the transaction does not signal replace-by-fee; its fee cannot be bumped")
    if sum(1 for o in outputs if o.change) > 1:
        found.warnings.append("more than one change output")
    if psbt.tx.version != 2:
        found.warnings.append(f"transaction version {psbt.tx.version} (expected 2)")


def _analyze(
    psbt: PSBT, desc: WalletDescriptor, known: Mapping[bytes, tuple[bool, int]]
) -> tuple[PsbtSummary, list[L2CustodyError]]:
    """Run every check; problems and warnings are listed in the order of the checks below."""
    found = _Findings()
    inputs = [_review_input(psbt, i, desc, known, found) for i in range(len(psbt.inputs))]
    outputs = [_review_output(j, pout, desc, known, found) for j, pout in enumerate(psbt.outputs)]
    _check_global_xpubs(psbt, desc, found)
    fees = _fees(psbt, desc, inputs, outputs)
    _check_outputs_within_inputs(fees, found)
    _warn_fee(fees, outputs, found)
    rbf = _signals_rbf(psbt)
    _warn_unusual_transaction(psbt, outputs, rbf, found)
    summary = PsbtSummary(
        txid=psbt_txid(psbt),
        fingerprint=psbt_fingerprint(psbt),
        network=desc.network,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        total_in=fees.total_in,
        total_out=fees.total_out,
        fee=fees.fee,
        vsize=fees.vsize,
        fee_rate=fees.fee_rate,
        locktime=psbt.tx.locktime,
        rbf=rbf,
        threshold=desc.threshold,
        complete=bool(inputs) and all(_input_complete(psbt, i, desc) for i in inputs),
        warnings=tuple(found.warnings),
        problems=tuple(p.message for p in found.problems),
    )
    return summary, found.problems


def summarize(
    psbt: PSBT, desc: WalletDescriptor, known_scripts: Mapping[bytes, tuple[bool, int]] | None = None
) -> PsbtSummary:
    """Describe the PSBT for a human or a script; problems are listed, not raised.

    ``known_scripts`` maps scripts of our addresses to (change, index) for
    PSBTs whose outputs lack BIP-32 metadata.
    """
    return _analyze(psbt, desc, known_scripts or {})[0]


def verify(
    psbt: PSBT,
    desc: WalletDescriptor,
    policy: Policy,
    expected_outputs: Sequence[TxOut] | None = None,
    *,
    verified_fingerprint: str | None = None,
    known_scripts: Mapping[bytes, tuple[bool, int]] | None = None,
) -> PsbtSummary:
    """Refuse (raise) anything a signer must not sign; return the summary otherwise.

    With ``expected_outputs``, the PSBT must contain exactly those outputs
    (script and amount, e.g. channel funding outputs) and nothing else but
    change to our own descriptor; the destination policy is then not
    consulted, the fee caps still are. With ``verified_fingerprint``, the
    PSBT must be the one verified before (``psbt_fingerprint``).
    """
    summary, problems = _analyze(psbt, desc, known_scripts or {})
    if verified_fingerprint is not None and summary.fingerprint != verified_fingerprint:
        raise PsbtTampered(
            f"the PSBT changed since it was verified (fingerprint {verified_fingerprint[:16]}..., now "
            f"{summary.fingerprint[:16]}...): inputs, outputs, amounts or locktime differ; refusing. "
            "Verify the new PSBT from scratch"
        )
    if problems:
        raise problems[0]
    if summary.fee is None:  # pragma: no cover - missing utxo info is a problem above
        raise PsbtError("cannot compute the fee: some inputs lack their previous output")
    if expected_outputs is not None:
        _match_expected(summary, expected_outputs, desc.network)
    else:
        _check_foreign_outputs(summary, policy, desc.network)
    policy.check_fee(summary.fee, summary.fee_rate or 0.0)
    return summary


def _check_foreign_outputs(summary: PsbtSummary, policy: Policy, network: str) -> None:
    """Every output that is not ours must not be another wallet's change and must be allowed by the policy."""
    for out in summary.outputs:
        if out.ours:
            continue
        if out.foreign_keys:
            raise PsbtTampered(
                f"{_describe_out(out.index, out.address, out.value, bytes.fromhex(out.script_pubkey))} "
                f"is marked as change of another wallet (key fingerprints {', '.join(out.foreign_keys)}): "
                "foreign change; refusing"
            )
        policy.check_destination(out.index, out.address, out.value, bytes.fromhex(out.script_pubkey), network)


def _match_expected(summary: PsbtSummary, expected: Sequence[TxOut], network: str) -> None:
    remaining: list[TxOut] = []
    for k, exp in enumerate(expected):
        if exp.address is not None:
            try:
                script = address_to_script(exp.address, network)
            except NetworkMismatch as exc:
                raise NetworkMismatch(f"expected output {k}: {exc.message}") from exc
            if script != bytes(exp.script_pubkey):
                raise PsbtError(f"expected output {k}: address {exp.address} does not match its script")
        remaining.append(exp)

    def label(t: TxOut) -> str:
        spk = bytes(t.script_pubkey)
        return f"{t.address or script_to_address(spk, network) or spk.hex()} {format_sats(t.value)}"

    for out in summary.outputs:
        spk = bytes.fromhex(out.script_pubkey)
        exact = next((t for t in remaining if bytes(t.script_pubkey) == spk and t.value == out.value), None)
        if exact is not None:
            remaining.remove(exact)
            continue
        if out.ours and out.change:
            continue
        where = _describe_out(out.index, out.address, out.value, spk)
        same_script = next((t for t in remaining if bytes(t.script_pubkey) == spk), None)
        if same_script is not None:
            raise PsbtTampered(
                f"{where}: the amount to that address should be {format_sats(same_script.value)}; refusing"
            )
        wanted = "; ".join(label(t) for t in remaining) or "none left"
        raise PsbtTampered(f"{where} is not one of the expected outputs ({wanted}) nor change to this wallet; refusing")
    if remaining:
        raise PsbtTampered("expected output(s) missing from the PSBT: " + "; ".join(label(t) for t in remaining))
