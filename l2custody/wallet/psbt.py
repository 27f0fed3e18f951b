"""PSBTs for the multisig: build, serialize, fingerprint, combine, finalize, extract.

Reviewing a PSBT (``summarize``, ``verify``, ``PsbtSummary``) lives in
``wallet/review.py``, which builds on this module (not the other way round).

Promises of ``build_psbt``:
- transaction version 2; every input signals RBF (nSequence 0xfffffffd), or,
  for a spend on a recovery wallet's recovery path (``recovery=N``), has
  nSequence N: the relative lock (BIP-68) its ``older(N)`` checks, which
  signals RBF too;
- anti-fee-sniping locktime: the given tip height, or one time in ten a
  random 0..99 blocks lower (as Bitcoin Core does);
- full BIP-174 metadata for hardware signers: witness_utxo and (when the
  previous transaction is known) non_witness_utxo, witness_script and the
  BIP-32 derivation of every key on every input, the same on the change
  output, and the cosigners' xpubs in the global section;
- input and output order is randomised (like Bitcoin Core, unlike BIP-69,
  whose sorted order is itself a wallet fingerprint). Callers find outputs
  by script with ``find_output``;
- change goes to the change branch at ``change_index`` and only if it is
  worth at least the dust threshold; smaller remainders go to the fee (or
  to the fee-paying output with ``subtract_fee_from``). Without a change
  index, an overshoot larger than a change output would cost is refused
  rather than silently given to miners.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO

from embit import ec
from embit.psbt import PSBT, DerivationPath, InputScope
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.errors import InsufficientFunds, PsbtError, PsbtTampered
from l2custody.numbers import is_positive
from l2custody.wallet import satisfy, size
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.descriptor import Derived
from l2custody.wallet.descriptors import WalletDescriptor
from l2custody.wallet.miniscript import RecoveryDescriptor
from l2custody.wallet.psbt_format import CheckedPsbt, check_psbt, determine_locktime

SIGHASH_ALL = 0x01
MAX_LOCKTIME_HEIGHT = 500_000_000  # above this nLockTime is a timestamp


@dataclass(frozen=True)
class Utxo:
    """A coin of the wallet: outpoint, value, and where in the descriptor it sits."""

    txid: str
    vout: int
    value: int
    script_pubkey: bytes
    change: bool
    index: int
    height: int | None = None
    prev_tx: bytes | None = None  # the full previous transaction, for non_witness_utxo

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True)
class TxOut:
    """An output to create: script and value, with the address it was given as (if any)."""

    script_pubkey: bytes
    value: int
    address: str | None = None

    @classmethod
    def to_address(cls, address: str, value: int, network: str) -> TxOut:
        """An output paying ``address``; NetworkMismatch if it is not of ``network``."""
        return cls(address_to_script(address, network), int(value), address.strip())


# --- serialization ------------------------------------------------------------
def load_psbt(data: bytes | str) -> PSBT:
    """Parse a PSBT from binary, base64 or hex; PsbtError says which it could not read."""
    raw: bytes | None
    if isinstance(data, str):
        text = "".join(data.split())
        raw = None
        if text.startswith("70736274ff"):
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = None
        if raw is None:
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise PsbtError("not a PSBT: the text is neither base64 nor hex") from exc
    else:
        raw = bytes(data)
        if not raw.startswith(b"psbt\xff"):
            return load_psbt(raw.decode("ascii", errors="replace"))
    if not raw.startswith(b"psbt\xff"):
        raise PsbtError("not a PSBT: it does not start with the PSBT magic bytes 'psbt\\xff'")
    try:
        checked = check_psbt(raw)
    except PsbtError as exc:
        raise PsbtError(f"invalid PSBT: {exc.message}. Ask whoever made it for a valid one") from None
    return _model(checked)


class ParsedPSBT(PSBT):
    """embit's PSBT, with the transaction built as the BIPs say.

    embit's ``tx`` turns sequence 0 into 0xffffffff and transaction version
    0 into 2, and takes a version 2 PSBT's fallback locktime even when an
    input requires another (BIP-370 "Determining Lock Time"). Every PSBT
    ``load_psbt`` reads is one of these, so its txid, sighashes and
    fingerprint are those of the real transaction.
    """

    @property
    def tx(self) -> Transaction:
        locktime = self.locktime or 0
        if self.version == 2:
            locktime = determine_locktime(self.locktime, [_required_locktimes(inp) for inp in self.inputs])
        return Transaction(
            version=self.tx_version if self.tx_version is not None else 2,
            locktime=locktime,
            vin=[
                TransactionInput(inp.txid, inp.vout, sequence=0xFFFFFFFF if inp.sequence is None else inp.sequence)
                for inp in self.inputs
            ],
            vout=[out.vout for out in self.outputs],
        )


def _required_locktimes(inp: InputScope) -> tuple[int | None, int | None]:
    time, height = inp.unknown.get(b"\x11"), inp.unknown.get(b"\x12")
    return (
        int.from_bytes(time, "little") if time is not None else None,
        int.from_bytes(height, "little") if height is not None else None,
    )


def _model(checked: CheckedPsbt) -> ParsedPSBT:
    """embit's model of a PSBT that passed ``check_psbt``: the same fields, read by embit."""
    # embit writes the unsigned transaction, and PSBT_GLOBAL_VERSION 2, itself; an explicit version 0 stays as read
    own = (b"\x00", b"\xfb") if checked.version == 2 else (b"\x00",)
    unknown = {f.key: f.value for f in checked.global_map.fields if f.key not in own}
    tx = None
    if checked.unsigned_tx is not None:
        u = checked.unsigned_tx
        tx = Transaction(
            version=u.version,
            vin=[TransactionInput(i.txid, i.vout, sequence=i.sequence) for i in u.inputs],
            vout=[TransactionOutput(o.value, Script(o.script_pubkey)) for o in u.outputs],
            locktime=u.locktime,
        )
    try:
        psbt = ParsedPSBT(tx, unknown, version=2 if checked.version == 2 else None)
        for i, m in enumerate(checked.inputs):
            vin = tx.vin[i] if tx is not None else None
            psbt.inputs[i] = ParsedPSBT.PSBTIN_CLS.read_from(BytesIO(m.raw), vin=vin)
        for j, m in enumerate(checked.outputs):
            vout = tx.vout[j] if tx is not None else None
            psbt.outputs[j] = ParsedPSBT.PSBTOUT_CLS.read_from(BytesIO(m.raw), vout=vout)
    except Exception as exc:  # pragma: no cover - check_psbt refuses what embit cannot read
        raise PsbtError(f"the PSBT is malformed and cannot be read: {exc}") from exc
    return psbt


def psbt_to_base64(psbt: PSBT) -> str:
    return psbt.to_base64()


def copy_psbt(psbt: PSBT) -> PSBT:
    """An independent copy (embit objects are mutable), read back by ``load_psbt``."""
    return load_psbt(psbt.serialize())


def psbt_txid(psbt: PSBT) -> str:
    """The txid (all inputs are segwit, so signing does not change it)."""
    return psbt.tx.txid().hex()


def psbt_fingerprint(psbt: PSBT) -> str:
    """SHA-256 (hex) of the unsigned transaction and of every input's spent output.

    Signatures and metadata do not change it; any change to inputs, outputs,
    amounts, sequence, locktime, or to the value/script an input claims to
    spend does. Store it when a PSBT is verified; compare before signing or
    broadcasting to detect "changed since verified".
    """
    h = hashlib.sha256(psbt.tx.serialize())
    for i in range(len(psbt.inputs)):
        utxo = input_utxo(psbt, i)
        if utxo is None:
            h.update(b"\x00")
        else:
            h.update(utxo.value.to_bytes(8, "little") + utxo.script_pubkey.serialize())
    return h.hexdigest()


def input_utxo(psbt: PSBT, i: int) -> TransactionOutput | None:
    """The output input ``i`` spends, from witness_utxo or non_witness_utxo (None if absent)."""
    inp = psbt.inputs[i]
    if inp.witness_utxo is not None:
        return inp.witness_utxo
    if inp.non_witness_utxo is not None and inp.vout < len(inp.non_witness_utxo.vout):
        return inp.non_witness_utxo.vout[inp.vout]
    return None


def find_output(psbt: PSBT, script_pubkey: bytes, value: int | None = None) -> int | None:
    """Index of the first output paying ``script_pubkey`` (and ``value`` if given), else None."""
    for i, out in enumerate(psbt.outputs):
        if out.script_pubkey.data == bytes(script_pubkey) and (value is None or out.value == value):
            return i
    return None


# --- build ----------------------------------------------------------------------
def anti_fee_sniping_locktime(tip_height: int, rng: random.Random | None = None) -> int:
    """Bitcoin Core's choice: the tip height, or 1 time in 10 up to 99 blocks earlier."""
    if not 0 <= tip_height < MAX_LOCKTIME_HEIGHT:
        raise PsbtError(f"block height {tip_height} is not a valid locktime height")
    rng = rng or random.SystemRandom()
    if rng.randrange(10) == 0:
        return max(0, tip_height - rng.randrange(100))
    return tip_height


def _check_utxo(desc: WalletDescriptor, utxo: Utxo) -> Derived:
    derived = desc.derive(utxo.change, utxo.index)
    if bytes(utxo.script_pubkey) != derived.script_pubkey:
        raise PsbtError(
            f"coin {utxo.outpoint} is recorded at {'change' if utxo.change else 'receive'} index "
            f"{utxo.index}, but that address is {derived.address}, not the coin's script; "
            "the wallet records are inconsistent — resync the wallet"
        )
    if utxo.value <= 0:
        raise PsbtError(f"coin {utxo.outpoint} has value {utxo.value}; cannot spend it")
    if utxo.prev_tx is not None:
        try:
            prev = Transaction.parse(utxo.prev_tx)
        except Exception as exc:
            raise PsbtError(f"the previous transaction stored for {utxo.outpoint} cannot be parsed") from exc
        if prev.txid().hex() != utxo.txid:
            raise PsbtError(f"the previous transaction stored for {utxo.outpoint} has txid {prev.txid().hex()}")
        out = prev.vout[utxo.vout] if utxo.vout < len(prev.vout) else None
        if out is None or out.value != utxo.value or out.script_pubkey.data != derived.script_pubkey:
            raise PsbtError(f"the previous transaction of {utxo.outpoint} does not pay this coin's value and script")
    return derived


def _derivations(derived: Derived) -> dict[ec.PublicKey, DerivationPath]:
    return {
        ec.PublicKey.parse(pub): DerivationPath(fp, list(path)) for pub, (fp, path) in sorted(derived.bip32.items())
    }


def _check_request(utxos: Sequence[Utxo], outputs: Sequence[TxOut], change_index: int | None, fee_rate: float) -> None:
    """Refuse requests that cannot make a transaction: no coins, a bad fee rate, nothing to pay."""
    if not utxos:
        raise InsufficientFunds("no coins to spend: the wallet has no confirmed UTXOs (run `wallet sync`?)")
    if not (isinstance(fee_rate, (int, float)) and is_positive(fee_rate)):
        raise PsbtError(f"fee rate {fee_rate!r} sat/vB must be a positive number")
    if not outputs and change_index is None:
        raise PsbtError("nothing to pay: give at least one output or a change index")


def _check_inputs(desc: WalletDescriptor, utxos: Sequence[Utxo]) -> list[Derived]:
    """Every coin once, each ours (see ``_check_utxo``); returns their addresses."""
    seen = set()
    derived_in = []
    for u in utxos:
        if u.outpoint in seen:
            raise PsbtError(f"coin {u.outpoint} is listed twice")
        seen.add(u.outpoint)
        derived_in.append(_check_utxo(desc, u))
    return derived_in


def _check_outputs(desc: WalletDescriptor, outputs: Sequence[TxOut], subtract_fee_from: int | None) -> list[TxOut]:
    """Copies of the outputs, each matching its address and above dust (the fee payer may be below)."""
    outs = [TxOut(bytes(o.script_pubkey), int(o.value), o.address) for o in outputs]
    for i, o in enumerate(outs):
        if o.address is not None and address_to_script(o.address, desc.network) != o.script_pubkey:
            raise PsbtError(f"output {i}: address {o.address} does not match its script")
        if o.value < size.dust_threshold(o.script_pubkey) and i != subtract_fee_from:
            raise PsbtError(
                f"output {i} ({o.address or o.script_pubkey.hex()}) of {o.value} sat is below the dust "
                f"threshold of {size.dust_threshold(o.script_pubkey)} sat; nodes would not relay it"
            )
    if subtract_fee_from is not None and not 0 <= subtract_fee_from < len(outs):
        raise PsbtError(f"subtract_fee_from={subtract_fee_from} is not an output index (0..{len(outs) - 1})")
    return outs


@dataclass(frozen=True)
class _FeeQuote:
    """The fee of the transaction without and with a change output, at ``rate`` sat/vB."""

    rate: float
    input_weight: int
    without_change: int
    with_change: int


def _quote_fee(
    desc: WalletDescriptor, n_inputs: int, outs: Sequence[TxOut], fee_rate: float, recovery: int | None
) -> _FeeQuote:
    in_weight = desc.input_weight(recovery)
    lens = [len(o.script_pubkey) for o in outs]
    fee_without = size.fee_for_weight(size.tx_weight([in_weight] * n_inputs, lens), fee_rate)
    fee_with = size.fee_for_weight(size.tx_weight([in_weight] * n_inputs, lens + [34]), fee_rate)
    return _FeeQuote(fee_rate, in_weight, fee_without, fee_with)


def _pay_fee_on_top(total_in: int, total_out: int, change: Derived | None, quote: _FeeQuote) -> int:
    """The inputs pay outputs and fee; returns the change value (0: none, the remainder goes to the fee)."""
    fee_without, fee_with = quote.without_change, quote.with_change
    if total_in - total_out - fee_without < 0:
        raise InsufficientFunds(
            f"the selected coins hold {total_in} sat but the outputs need {total_out} sat plus "
            f"{fee_without} sat fee at {quote.rate} sat/vB; short by {total_out + fee_without - total_in} sat"
        )
    leftover = total_in - total_out - fee_with
    if change is not None and leftover >= size.dust_threshold(change.script_pubkey):
        return leftover
    if change is None:
        excess = total_in - total_out - fee_without
        limit = size.cost_of_change(quote.rate, size.output_weight(34), quote.input_weight) + size.dust_threshold(
            b"\x00\x20" + bytes(32)
        )
        if excess > limit:
            raise PsbtError(
                f"without a change output {excess} sat above the fee would go to miners; "
                "pass a change index (or add it to an output) instead"
            )
    return 0


def _pay_fee_from_output(
    total_in: int, outs: Sequence[TxOut], payer_index: int, change: Derived | None, quote: _FeeQuote
) -> tuple[TxOut, int]:
    """Output ``payer_index`` pays the fee; returns it lowered by the fee, and the change value (0: none)."""
    total_out = sum(o.value for o in outs)
    remainder = total_in - total_out
    if remainder < 0:
        raise InsufficientFunds(f"the selected coins hold {total_in} sat but the outputs add up to {total_out} sat")
    payer = outs[payer_index]
    change_value = 0
    if change is not None and remainder >= size.dust_threshold(change.script_pubkey):
        change_value, new_value = remainder, payer.value - quote.with_change
    else:
        new_value = payer.value + remainder - quote.without_change
    floor = size.dust_threshold(payer.script_pubkey)
    if new_value < floor:
        raise InsufficientFunds(
            f"output {payer_index} would keep only {new_value} sat after paying the fee, "
            f"below the dust threshold of {floor} sat; send more or lower the fee rate"
        )
    return TxOut(payer.script_pubkey, new_value, payer.address), change_value


def _choose_locktime(locktime: int, anti_fee_sniping: bool, rng: random.Random) -> int:
    lock = anti_fee_sniping_locktime(locktime, rng) if anti_fee_sniping else int(locktime)
    if not 0 <= lock < MAX_LOCKTIME_HEIGHT:
        raise PsbtError(f"locktime {lock} is not a block height")
    return lock


def _add_input_metadata(psbt: PSBT, inputs: Sequence[tuple[Utxo, Derived]]) -> None:
    """witness_utxo, non_witness_utxo (when the previous transaction is known), witness script, key origins."""
    for pin, (u, derived) in zip(psbt.inputs, inputs, strict=True):
        pin.unknown = {}
        pin.witness_utxo = TransactionOutput(u.value, Script(derived.script_pubkey))
        if u.prev_tx is not None:
            pin.non_witness_utxo = Transaction.parse(u.prev_tx)
        pin.witness_script = Script(derived.witness_script)
        pin.bip32_derivations.update(_derivations(derived))


def _add_output_metadata(psbt: PSBT, outputs: Sequence[tuple[TxOut, Derived | None]]) -> None:
    """Witness script and key origins on our (change) outputs."""
    for pout, (_, derived) in zip(psbt.outputs, outputs, strict=True):
        pout.unknown = {}
        if derived is not None:
            pout.witness_script = Script(derived.witness_script)
            pout.bip32_derivations.update(_derivations(derived))


def _assemble(
    desc: WalletDescriptor,
    inputs: Sequence[tuple[Utxo, Derived]],
    outputs: Sequence[tuple[TxOut, Derived | None]],
    lock: int,
    sequence: int,
) -> PSBT:
    """The PSBT of a version 2, RBF-signalling transaction with full BIP-174 metadata."""
    tx = Transaction(
        version=2,
        vin=[TransactionInput(bytes.fromhex(u.txid), u.vout, sequence=sequence) for u, _ in inputs],
        vout=[TransactionOutput(o.value, Script(o.script_pubkey)) for o, _ in outputs],
        locktime=lock,
    )
    psbt = PSBT(tx)
    psbt.unknown = {}  # embit shares a mutable default dict between instances
    _add_input_metadata(psbt, inputs)
    _add_output_metadata(psbt, outputs)
    for key in desc.keys:
        psbt.xpubs[key.hdkey] = DerivationPath(key.fingerprint_bytes, key.indexes)
    return psbt


def build_psbt(
    desc: WalletDescriptor,
    utxos: Sequence[Utxo],
    outputs: Sequence[TxOut],
    change_index: int | None,
    fee_rate: float,
    locktime: int,
    subtract_fee_from: int | None = None,
    *,
    anti_fee_sniping: bool = True,
    shuffle: bool = True,
    rng: random.Random | None = None,
    recovery: int | None = None,
) -> PSBT:
    """Build an unsigned PSBT spending exactly ``utxos`` to ``outputs`` (+ change).

    ``locktime`` is the current chain tip height; with ``anti_fee_sniping``
    (the default) it may be lowered as Bitcoin Core does, else it is used
    as is. ``fee_rate`` is in sat/vB. ``subtract_fee_from`` is the index in
    ``outputs`` whose value pays the fee (and receives a sub-dust remainder).
    ``recovery`` (a recovery wallet only) is the delay in blocks of the
    recovery path the spend will use: every input gets that nSequence and
    the fee is for that path's witness.
    Raises InsufficientFunds when the coins cannot pay, PsbtError for
    impossible requests (dust outputs, duplicate coins, bad fee rate).
    """
    rng = rng or random.SystemRandom()
    _check_request(utxos, outputs, change_index, fee_rate)
    sequence = _input_sequence(desc, recovery)
    derived_in = _check_inputs(desc, utxos)
    outs = _check_outputs(desc, outputs, subtract_fee_from)

    change = desc.derive(True, change_index) if change_index is not None else None
    quote = _quote_fee(desc, len(utxos), outs, fee_rate, recovery)
    total_in = sum(u.value for u in utxos)
    if subtract_fee_from is None:
        change_value = _pay_fee_on_top(total_in, sum(o.value for o in outs), change, quote)
    else:
        payer, change_value = _pay_fee_from_output(total_in, outs, subtract_fee_from, change, quote)
        outs[subtract_fee_from] = payer

    final_outs: list[tuple[TxOut, Derived | None]] = [(o, None) for o in outs]
    if change_value:
        assert change is not None
        final_outs.append((TxOut(change.script_pubkey, change_value, change.address), change))
    pairs = list(zip(utxos, derived_in, strict=True))
    if shuffle:
        rng.shuffle(pairs)
        rng.shuffle(final_outs)
    lock = _choose_locktime(locktime, anti_fee_sniping, rng)
    return _assemble(desc, pairs, final_outs, lock, sequence)


def _input_sequence(desc: WalletDescriptor, recovery: int | None) -> int:
    """RBF's nSequence, or the delay of the recovery path the spend uses (BIP-68, for older(N))."""
    if recovery is None:
        return size.RBF_SEQUENCE
    if not isinstance(desc, RecoveryDescriptor):
        raise PsbtError("this wallet has no recovery path: a wsh(sortedmulti) coin is spent with K of its keys")
    return desc.recovery_path(int(recovery)).delay


# --- signatures -------------------------------------------------------------------
@dataclass(frozen=True)
class SignatureCheck:
    """One partial signature found on an input, and whether it is valid for our script."""

    input_index: int
    pubkey: bytes
    fingerprint: str | None  # the cosigner's master fingerprint, if the key is ours
    valid: bool
    reason: str = ""


def check_signatures(psbt: PSBT, i: int, derived: Derived) -> list[SignatureCheck]:
    """Check every partial signature on input ``i`` against ``derived``'s keys and the sighash.

    A signature is valid only if its key is one of the input's multisig
    keys, its sighash type is SIGHASH_ALL (anything weaker would let others
    change the transaction), and it verifies for this exact transaction.
    """
    out = []
    inp = psbt.inputs[i]
    sighash_cache: bytes | None = None
    for pub, sig in inp.partial_sigs.items():
        sec = pub.sec()
        fp_path = derived.bip32.get(sec)
        fp = fp_path[0].hex() if fp_path else None
        if fp_path is None:
            out.append(SignatureCheck(i, sec, None, False, "key is not one of this input's multisig keys"))
            continue
        if not sig or sig[-1] != SIGHASH_ALL:
            out.append(SignatureCheck(i, sec, fp, False, f"sighash type {sig[-1:].hex() or 'none'} is not SIGHASH_ALL"))
            continue
        try:
            signature = ec.Signature.parse(sig[:-1])
        except Exception:
            out.append(SignatureCheck(i, sec, fp, False, "signature is not valid DER"))
            continue
        if sighash_cache is None:
            sighash_cache = psbt.tx.sighash_segwit(
                i, Script(derived.witness_script), _spent_value(psbt, i), sighash=SIGHASH_ALL
            )
        if not pub.verify(signature, sighash_cache):
            out.append(SignatureCheck(i, sec, fp, False, "signature does not verify for this transaction"))
            continue
        out.append(SignatureCheck(i, sec, fp, True))
    return out


def _spent_value(psbt: PSBT, i: int) -> int:
    """The amount input ``i`` spends (signed over by BIP-143); PsbtError if the PSBT does not say."""
    utxo = input_utxo(psbt, i)
    if utxo is None:
        raise PsbtError(f"input {i} carries no witness_utxo or non_witness_utxo: its signatures cannot be checked")
    return utxo.value


def count_signatures(psbt: PSBT) -> list[int]:
    """Partial signatures per input (a finalized input counts as -1: already complete)."""
    return [
        -1 if inp.final_scriptwitness is not None and inp.final_scriptwitness.items else len(inp.partial_sigs)
        for inp in psbt.inputs
    ]


def derive_input(
    desc: WalletDescriptor, psbt: PSBT, i: int, known_scripts: Mapping[bytes, tuple[bool, int]] | None = None
) -> Derived | None:
    """Which of our addresses input ``i`` spends, from its BIP-32 metadata (or ``known_scripts``).

    None if it is not ours. The claim in the metadata is only trusted if
    re-deriving gives exactly the script the input spends.
    """
    utxo = input_utxo(psbt, i)
    if utxo is None:
        return None
    spk = utxo.script_pubkey.data
    for der in psbt.inputs[i].bip32_derivations.values():
        hit = desc.match_derivation(der.fingerprint, der.derivation)
        if hit is not None:
            derived = desc.derive(*hit)
            return derived if derived.script_pubkey == spk else None
    if known_scripts and spk in known_scripts:
        derived = desc.derive(*known_scripts[spk])
        return derived if derived.script_pubkey == spk else None
    return None


# --- combine, finalize, extract ---------------------------------------------------
def combine(psbts: Sequence[PSBT]) -> PSBT:
    """Merge signatures and metadata of PSBTs for the same transaction (BIP-174 combiner).

    Raises PsbtError if they describe different transactions. The inputs are
    not modified.
    """
    if not psbts:
        raise PsbtError("nothing to combine")
    result = copy_psbt(psbts[0])
    base = result.tx.serialize()
    for n, other in enumerate(psbts[1:], start=2):
        if other.tx.serialize() != base:
            raise PsbtError(
                f"PSBT {n} is for a different transaction ({psbt_txid(other)}) than PSBT 1 "
                f"({psbt_txid(result)}); only copies of one PSBT can be combined"
            )
        for mine, theirs in zip(result.inputs, other.inputs, strict=False):
            for pub, sig in theirs.partial_sigs.items():
                mine.partial_sigs.setdefault(pub, sig)
            for pub, der in theirs.bip32_derivations.items():
                mine.bip32_derivations.setdefault(pub, der)
            mine.witness_utxo = mine.witness_utxo or theirs.witness_utxo
            mine.non_witness_utxo = mine.non_witness_utxo or theirs.non_witness_utxo
            mine.witness_script = mine.witness_script or theirs.witness_script
            if not (mine.final_scriptwitness and mine.final_scriptwitness.items):
                mine.final_scriptwitness = theirs.final_scriptwitness
        for mine_out, theirs_out in zip(result.outputs, other.outputs, strict=False):
            for pub, der in theirs_out.bip32_derivations.items():
                mine_out.bip32_derivations.setdefault(pub, der)
            mine_out.witness_script = mine_out.witness_script or theirs_out.witness_script
        for xpub, der in other.xpubs.items():
            result.xpubs.setdefault(xpub, der)
    return result


def final_witness_valid(psbt: PSBT, i: int, derived: Derived, desc: WalletDescriptor | None = None) -> bool:
    """True if input ``i``'s final witness satisfies our script with valid signatures.

    A multisig's is ``[dummy, K valid signatures in key order, our script]``;
    a recovery wallet's (``desc`` given) satisfies one of its paths, a
    recovery path only if the input's nSequence opens it.
    """
    items = psbt.inputs[i].final_scriptwitness.items
    if isinstance(desc, RecoveryDescriptor):
        return _recovery_witness_valid(psbt, i, derived, desc, list(items))
    threshold = derived.threshold
    if len(items) != threshold + 2 or items[0] != b"" or items[-1] != derived.witness_script:
        return False
    probe = copy_psbt(psbt)
    pin = probe.inputs[i]
    pin.final_scriptwitness = None
    keys = iter(derived.pubkeys)
    for sig in items[1:-1]:  # CHECKMULTISIG order: each signature matches a later key
        for key in keys:
            pin.partial_sigs = {ec.PublicKey.parse(key): sig}
            if check_signatures(probe, i, derived)[0].valid:
                break
        else:
            return False
    return True


def finalize_psbt(
    psbt: PSBT, desc: WalletDescriptor, known_scripts: Mapping[bytes, tuple[bool, int]] | None = None
) -> PSBT:
    """A finalized copy (BIP-174 finalizer): every input gets its witness from K valid signatures
    (on a recovery wallet: from the cheapest path its signatures and nSequence complete).

    Unlike a strict BIP-174 finalizer it keeps key origins and the witness
    script (harmless to other tools) so the result can still be summarized.

    Raises PsbtTampered if an input is not ours or carries an invalid
    signature, PsbtError naming the input and the missing cosigners if an
    input has fewer than K valid signatures.
    """
    result = copy_psbt(psbt)
    for i, pin in enumerate(result.inputs):
        derived = derive_input(desc, result, i, known_scripts)
        if derived is None:
            raise PsbtTampered(f"input {i} does not spend an address of this wallet; refusing to finalize")
        if pin.final_scriptwitness is not None and pin.final_scriptwitness.items:
            if not final_witness_valid(result, i, derived, desc):
                raise PsbtTampered(f"input {i} was finalized elsewhere with a witness that is not valid for our script")
            continue
        checks = check_signatures(result, i, derived)
        bad = [c for c in checks if not c.valid]
        if bad:
            raise PsbtTampered(
                f"input {i}: signature from key {bad[0].pubkey.hex()[:16]}... "
                f"(fingerprint {bad[0].fingerprint or 'unknown'}) is refused: {bad[0].reason}"
            )
        valid = {c.pubkey for c in checks}
        if isinstance(desc, RecoveryDescriptor):
            witness = _recovery_witness(result, i, derived, desc, valid)
        else:
            witness = _multisig_witness(result, i, derived, desc.threshold, checks)
        pin.final_scriptwitness = Witness(witness)
        # Key origins and the witness script stay, so the finalized PSBT can
        # still be reviewed (summarize) against the descriptor.
        pin.partial_sigs = {}
        pin.sighash_type = None
    return result


def _multisig_witness(
    psbt: PSBT, i: int, derived: Derived, threshold: int, checks: list[SignatureCheck]
) -> list[bytes]:
    """``[dummy, K signatures in key order, script]``; PsbtError naming the missing cosigners."""
    valid = {c.pubkey for c in checks}
    if len(valid) < threshold:
        have = sorted(c.fingerprint for c in checks if c.fingerprint)
        missing = sorted(fp.hex() for _, (fp, _p) in derived.bip32.items() if fp.hex() not in have)
        raise PsbtError(
            f"input {i} has {len(valid)} of the {threshold} signatures it needs; "
            f"collect {threshold - len(valid)} more from: {', '.join(missing)}"
        )
    by_key = {pub.sec(): sig for pub, sig in psbt.inputs[i].partial_sigs.items()}
    sigs = [by_key[pk] for pk in derived.pubkeys if pk in valid][:threshold]
    return [b""] + sigs + [derived.witness_script]


# --- the recovery wallet's witnesses (wallet/satisfy.py) --------------------------------------
def _signature_checker(psbt: PSBT, i: int, derived: Derived) -> Callable[[bytes, bytes], bool]:
    """``valid(pubkey, signature)`` for input ``i``: one of its keys, SIGHASH_ALL, and it verifies."""
    sighash: list[bytes] = []

    def valid(pub: bytes, sig: bytes) -> bool:
        if pub not in derived.bip32 or not sig or sig[-1] != SIGHASH_ALL:
            return False
        try:
            signature, key = ec.Signature.parse(sig[:-1]), ec.PublicKey.parse(pub)
        except Exception:
            return False
        if not sighash:
            script = Script(derived.witness_script)
            sighash.append(psbt.tx.sighash_segwit(i, script, _spent_value(psbt, i), sighash=SIGHASH_ALL))
        return bool(key.verify(signature, sighash[0]))

    return valid


def _input_lock(psbt: PSBT, i: int) -> int | None:
    tx = psbt.tx
    return satisfy.relative_lock(tx.vin[i].sequence, tx.version)


def _recovery_witness_valid(psbt: PSBT, i: int, derived: Derived, desc: RecoveryDescriptor, items: list[bytes]) -> bool:
    if not items or items[-1] != derived.witness_script:
        return False
    pubkeys = desc.pubkeys_at(derived.change, derived.index)
    checker = _signature_checker(psbt, i, derived)
    return satisfy.matching_path(desc.tree, pubkeys, items[:-1], checker, _input_lock(psbt, i)) is not None


def _recovery_witness(psbt: PSBT, i: int, derived: Derived, desc: RecoveryDescriptor, valid: set[bytes]) -> list[bytes]:
    """The witness of the cheapest path the valid signatures and the input's nSequence complete."""
    sigs = {pub.sec(): sig for pub, sig in psbt.inputs[i].partial_sigs.items() if pub.sec() in valid}
    pubkeys = desc.pubkeys_at(derived.change, derived.index)
    lock = _input_lock(psbt, i)
    found = satisfy.cheapest(desc.tree, pubkeys, sigs, len(derived.witness_script), lock)
    if found is None:
        raise PsbtError(_why_unsatisfied(i, desc, pubkeys, set(sigs), psbt.tx.vin[i].sequence, lock))
    return [*found.items, derived.witness_script]


def _why_unsatisfied(
    i: int, desc: RecoveryDescriptor, pubkeys: Mapping[str, bytes], signed: set[bytes], sequence: int, lock: int | None
) -> str:
    """Each path: how many signatures it has of how many, who is missing, whether nSequence opens it."""
    parts = []
    for path in desc.spending_paths:
        have = [k.fingerprint for k in path.keys if pubkeys[k.fingerprint] in signed]
        missing = [k.fingerprint for k in path.keys if k.fingerprint not in have]
        need = max(path.threshold - len(have), 0)
        name = "the primary path" if path.delay is None else f"the recovery path after {path.delay} blocks"
        text = f"{name} has {len(have)} of the {path.threshold} signatures it needs"
        if need:
            text += f" (collect {need} more from: {', '.join(missing)})"
        if path.delay is not None and (lock is None or lock < path.delay):
            text += f" and is open only to a spend built for it (nSequence {path.delay}; this input has {sequence:#x})"
        parts.append(text)
    return f"input {i} cannot be finalized: " + "; ".join(parts)


def extract(psbt: PSBT) -> bytes:
    """The network-serialized signed transaction of a fully finalized PSBT (BIP-174 extractor)."""
    tx = copy_psbt(psbt).tx
    for i, pin in enumerate(psbt.inputs):
        if pin.final_scriptwitness is None or not pin.final_scriptwitness.items:
            raise PsbtError(f"input {i} is not finalized; run finalize first")
        tx.vin[i].witness = Witness(list(pin.final_scriptwitness.items))
        if pin.final_scriptsig is not None:
            tx.vin[i].script_sig = pin.final_scriptsig
    return tx.serialize()


def finalize(
    psbt: PSBT, desc: WalletDescriptor, known_scripts: Mapping[bytes, tuple[bool, int]] | None = None
) -> bytes:
    """Finalize and extract in one step: the raw signed transaction, ready to broadcast."""
    return extract(finalize_psbt(psbt, desc, known_scripts))


__all__ = [
    "Utxo",
    "TxOut",
    "build_psbt",
    "load_psbt",
    "psbt_to_base64",
    "copy_psbt",
    "psbt_fingerprint",
    "psbt_txid",
    "find_output",
    "combine",
    "finalize_psbt",
    "extract",
    "finalize",
    "count_signatures",
    "check_signatures",
    "final_witness_valid",
    "derive_input",
    "anti_fee_sniping_locktime",
]
