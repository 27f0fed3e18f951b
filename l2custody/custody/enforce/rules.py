"""The custody rules for lnd requests made with an l2custody caveat macaroon.

================================  ==============================================================
request                            allowed when
================================  ==============================================================
``CloseChannel``                   no ``delivery_address`` (the upfront address or the node
                                   wallet, which ``sweep`` empties), or one of our addresses
``OpenChannel`` ``OpenChannelSync``  every channel's ``close_address`` is one of our addresses;
``BatchOpenChannel``                 a channel funded through a shim (PSBT, as l2custody's sessions
                                   do) may omit it (``--allow-no-upfront-shutdown``)
``ChannelAcceptor`` answers        an accepted channel's ``upfront_shutdown`` is ours
``SendCoins`` ``SendMany``         every output pays: our multisig, an allowed destination
``SendOutputs`` ``FundPsbt``       (``[policy]``), a funding output of one of our live funding
``SignPsbt`` ``FinalizePsbt``      sessions, or the node's own wallet; PSBT inputs and
``PublishTransaction``             signatures use the default sighash (ALL) only
every one of them, ``BumpFee``     the fee rate the caller sets is within ``[policy]
                                   max_fee_rate``; a PSBT's fee within ``max_fee_sat``
any other method needing           refused: no rule reads it (signrpc signing, macaroon baking,
onchain:write, signer:generate,    wallet imports, methods newer than l2custody's protos)
macaroon:generate/write
================================  ==============================================================

Why a shim-funded channel may omit its close address: its money does not
come from the node wallet (FundPsbt/SignPsbt to a funding address that is not
a live session's are refused), so it is the multisig's (the signers checked
the session) or someone else's; a close the node starts is still policed by
the ``CloseChannel`` rule, and one the peer starts pays the node wallet, which
``sweep`` empties. A node-wallet-funded channel must always commit ours.

A request that cannot be read, or whose check raises, is refused (the
service fails closed). The rules are pure: :class:`EnforceFacts` brings the
wallet and the node.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from l2custody.amounts import format_sats
from l2custody.backends.rpc_calls import (
    KIND_ACCEPT,
    KIND_CLOSE,
    KIND_FEE,
    KIND_OPEN,
    KIND_PAY,
    KIND_PSBT,
    KIND_TX,
    KIND_UNCHECKED,
    CallVerdict,
    Payment,
    RpcCall,
)
from l2custody.errors import NetworkMismatch, UsageError

RULE_MALFORMED = "malformed-request"
RULE_UNCHECKED = "unchecked-method"
RULE_CLOSE_DESTINATION = "close-destination"
RULE_CLOSE_ADDRESS = "close-address"
RULE_SPEND_DESTINATION = "spend-destination"
RULE_SIGHASH = "sighash"
RULE_FEE = "fee-cap"
RULE_CHECK_FAILED = "check-failed"

ALLOW_NOT_POLICED = "not-policed"
ALLOW_CHECKED = "checked"

_ALL = 0x01


class EnforceFacts(Protocol):
    """What the rules ask: the wallet's view (no network) and the node's wallet (may call lnd)."""

    network: str  # embit network name
    config_path: str
    max_fee_sat: int | None
    max_fee_rate: float | None

    def ours(self, script: bytes) -> bool:
        """An address of the custody multisig."""

    def allowed(self, script: bytes) -> bool:
        """A destination ``[policy]`` allows."""

    def session_output(self, script: bytes) -> bool:
        """A channel funding output of one of our live funding sessions."""

    def node_owns(self, address: str) -> bool:
        """An address of the node's own on-chain wallet (asks the node; may raise)."""

    def spent_value(self, txid: str, vout: int) -> int | None:
        """The value of an output a transaction spends, None if the chain source cannot tell
        (Bitcoin Core without txindex): the fee of a raw transaction is then not checked."""


def _hint(facts: EnforceFacts) -> str:
    return (
        f"pay an address from `l2custody wallet address`, or add the destination to [policy] "
        f"allowed_destinations in {facts.config_path} and restart `l2custody node enforce`"
    )


def _refused(call: RpcCall, rule: str, why: str, **details: Any) -> CallVerdict:
    return CallVerdict.refuse(
        rule, f"{call.short_method} refused by l2custody (rule {rule}): {why}", method=call.method, **details
    )


def _script(address: str, facts: EnforceFacts) -> bytes | None:
    """The address's script; None if it belongs to another network (never ours)."""
    from l2custody.wallet.addresses import address_to_script

    try:
        return address_to_script(address, facts.network)
    except NetworkMismatch:
        return None


def _ours_address(address: str, facts: EnforceFacts) -> bool:
    script = _script(address, facts)
    return script is not None and facts.ours(script)


def _destination_reason(script: bytes | None, address: str | None, facts: EnforceFacts) -> str | None:
    """Why paying this output is fine, or None."""
    if script is not None:
        if facts.ours(script):
            return "ours"
        if facts.allowed(script):
            return "policy"
        if facts.session_output(script):
            return "session-funding"
    if address is not None and facts.node_owns(address):
        return "node-wallet"
    return None


def _check_payment(call: RpcCall, pay: Payment, facts: EnforceFacts) -> CallVerdict | str:
    from l2custody.wallet.addresses import script_to_address

    if pay.address is not None:
        try:
            script = _script(pay.address, facts)
        except UsageError as exc:
            return _refused(call, RULE_MALFORMED, f"{pay.where}: {exc.message}")
        address: str | None = pay.address
    else:
        script = pay.script or b""
        address = script_to_address(script, facts.network)
    reason = _destination_reason(script, address, facts)
    if reason is not None:
        return reason
    amount = "all funds" if pay.amount_sat is None else format_sats(pay.amount_sat)
    where = address or f"script {(script or b'').hex()}"
    return _refused(
        call,
        RULE_SPEND_DESTINATION,
        f"{pay.where} pays {amount} to {where}, which is not the custody multisig, not an allowed "
        f"destination, not a funding output of an l2custody session and not this node's wallet; {_hint(facts)}",
        destination=where,
    )


def _check_fee_rate(call: RpcCall, facts: EnforceFacts) -> CallVerdict | None:
    rate = call.fee_rate_sat_vb
    if rate is not None and facts.max_fee_rate is not None and rate > facts.max_fee_rate + 1e-9:
        return _refused(
            call,
            RULE_FEE,
            f"fee rate {rate:g} sat/vB is above the cap of {facts.max_fee_rate:g} sat/vB ([policy] max_fee_rate)",
            fee_rate=rate,
        )
    return None


def _check_outputs(
    call: RpcCall, outputs: list[tuple[int, bytes, int]], facts: EnforceFacts
) -> CallVerdict | list[str]:
    from l2custody.wallet.addresses import script_to_address

    reasons = []
    for index, script, value in outputs:
        address = script_to_address(script, facts.network)
        verdict = _check_payment(call, Payment(f"output {index}", address, script, value), facts)
        if isinstance(verdict, CallVerdict):
            return verdict
        reasons.append(verdict)
    return reasons


def _vsize(tx: Any) -> int:
    """Virtual size (BIP 141): stripped size x 3 + full size, over 4, rounded up."""
    full = len(tx.serialize())
    witness = sum(len(vin.witness.serialize()) for vin in tx.vin) + 2 if tx.is_segwit else 0  # + marker, flag
    return (3 * (full - witness) + full + 3) // 4


def _check_psbt_fee(call: RpcCall, fee: int, facts: EnforceFacts) -> CallVerdict | None:
    if facts.max_fee_sat is not None and fee > facts.max_fee_sat:
        return _refused(
            call,
            RULE_FEE,
            f"the transaction pays a fee of {format_sats(fee)}, above the cap of {format_sats(facts.max_fee_sat)} "
            "([policy] max_fee_sat)",
            fee=fee,
        )
    return None


def _signature_sighash(item: bytes) -> int | None:
    """The sighash byte of a witness item that is a signature (DER ECDSA or 65-byte Schnorr)."""
    if 9 <= len(item) <= 73 and item[0] == 0x30 and item[1] == len(item) - 3:
        return item[-1]
    if len(item) == 65 and item[0] not in (0x04, 0x06, 0x07):  # not an uncompressed pubkey
        return item[-1]
    return None


def _check_psbt(call: RpcCall, facts: EnforceFacts) -> CallVerdict:
    from l2custody.custody.psbt_limits import sighash_problem
    from l2custody.errors import PsbtError
    from l2custody.wallet.psbt import input_utxo, load_psbt, psbt_txid

    try:
        psbt = load_psbt(call.psbt or b"")
    except PsbtError as exc:
        return _refused(call, RULE_MALFORMED, f"cannot read the PSBT: {exc.message}")
    weak = sighash_problem(psbt)
    if weak is not None:
        return _refused(call, RULE_SIGHASH, weak)
    for i, inp in enumerate(psbt.inputs):
        for sig in inp.partial_sigs.values():
            if bytes(sig)[-1:] != bytes([_ALL]):
                return _refused(call, RULE_SIGHASH, f"input {i} carries a signature that is not SIGHASH_ALL")
    outputs = [(i, bytes(o.script_pubkey.data), int(o.value)) for i, o in enumerate(psbt.outputs)]
    checked = _check_outputs(call, outputs, facts)
    if isinstance(checked, CallVerdict):
        return checked
    spent = [input_utxo(psbt, i) for i in range(len(psbt.inputs))]
    fee = None
    if spent and all(u is not None for u in spent):
        fee = sum(int(u.value) for u in spent if u is not None) - sum(v for _, _, v in outputs)
        capped = _check_psbt_fee(call, fee, facts)
        if capped is not None:
            return capped
    return CallVerdict.ok(ALLOW_CHECKED, method=call.method, txid=psbt_txid(psbt), outputs=checked, fee=fee)


def _check_tx(call: RpcCall, facts: EnforceFacts) -> CallVerdict:
    from embit.transaction import Transaction

    try:
        tx = Transaction.parse(call.raw_tx or b"")
    except Exception as exc:
        return _refused(call, RULE_MALFORMED, f"cannot read the transaction: {exc}")
    for i, vin in enumerate(tx.vin):
        for item in vin.witness.items:
            sighash = _signature_sighash(bytes(item))
            if sighash is not None and sighash != _ALL:
                return _refused(
                    call,
                    RULE_SIGHASH,
                    f"input {i} is signed with sighash type {sighash:#04x}; only SIGHASH_ALL is allowed",
                )
    outputs = [(i, bytes(o.script_pubkey.data), int(o.value)) for i, o in enumerate(tx.vout)]
    checked = _check_outputs(call, outputs, facts)
    if isinstance(checked, CallVerdict):
        return checked
    spent = [facts.spent_value(vin.txid.hex(), vin.vout) for vin in tx.vin]
    fee = None
    if spent and all(v is not None for v in spent):
        fee = sum(v for v in spent if v is not None) - sum(v for _, _, v in outputs)
        rate = fee / _vsize(tx)
        capped = _check_psbt_fee(call, fee, facts) or _check_fee_rate(replace(call, fee_rate_sat_vb=rate), facts)
        if capped is not None:
            return capped
    return CallVerdict.ok(ALLOW_CHECKED, method=call.method, txid=tx.txid().hex(), outputs=checked, fee=fee)


def _check_close_addresses(call: RpcCall, facts: EnforceFacts) -> CallVerdict:
    for i, address in enumerate(call.close_addresses):
        what = "upfront_shutdown" if call.kind == KIND_ACCEPT else f"channel {i} close_address"
        if not address and call.kind == KIND_OPEN and call.external_funding:
            continue  # funded outside the node wallet (a session's PSBT): see the module docstring
        if not address:
            return _refused(
                call,
                RULE_CLOSE_ADDRESS,
                f"{what} is not set; every channel must commit its cooperative close to the custody multisig: "
                "open channels with `l2custody channel open` (or set close_address to an address from "
                "`l2custody wallet address`)",
            )
        try:
            ours = _ours_address(address, facts)
        except UsageError as exc:
            return _refused(call, RULE_MALFORMED, f"{what}: {exc.message}")
        if not ours:
            return _refused(
                call,
                RULE_CLOSE_ADDRESS,
                f"{what} {address} is not an address of the custody multisig; use one from `l2custody wallet address`",
                close_address=address,
            )
    return CallVerdict.ok(ALLOW_CHECKED, method=call.method, close_addresses=list(call.close_addresses))


def _check_close(call: RpcCall, facts: EnforceFacts) -> CallVerdict:
    if call.delivery_address is None:
        return CallVerdict.ok(ALLOW_CHECKED, method=call.method, delivery="upfront-or-node-wallet", **call.details)
    try:
        ours = _ours_address(call.delivery_address, facts)
    except UsageError as exc:
        return _refused(call, RULE_MALFORMED, f"delivery_address: {exc.message}")
    if not ours:
        return _refused(
            call,
            RULE_CLOSE_DESTINATION,
            f"delivery_address {call.delivery_address} is not an address of the custody multisig; close "
            "without one (the upfront address, or the node wallet that `l2custody sweep` empties) or use "
            "`l2custody channel close`",
            delivery_address=call.delivery_address,
        )
    return CallVerdict.ok(ALLOW_CHECKED, method=call.method, delivery_address=call.delivery_address, **call.details)


def _check_pay(call: RpcCall, facts: EnforceFacts) -> CallVerdict:
    if not call.payments:
        return _refused(call, RULE_MALFORMED, "the request names no output")
    reasons = []
    for pay in call.payments:
        verdict = _check_payment(call, pay, facts)
        if isinstance(verdict, CallVerdict):
            return verdict
        reasons.append(verdict)
    return CallVerdict.ok(ALLOW_CHECKED, method=call.method, outputs=reasons)


def _fee_only(call: RpcCall, facts: EnforceFacts) -> CallVerdict:
    return CallVerdict.ok(ALLOW_CHECKED, method=call.method)


_CHECKS = {
    KIND_CLOSE: _check_close,
    KIND_OPEN: _check_close_addresses,
    KIND_ACCEPT: _check_close_addresses,
    KIND_PAY: _check_pay,
    KIND_PSBT: _check_psbt,
    KIND_TX: _check_tx,
    KIND_FEE: _fee_only,
}


def judge(call: RpcCall, facts: EnforceFacts) -> CallVerdict:
    """The verdict on one intercepted call made with a caveat macaroon (may raise: refuse then)."""
    if call.problem is not None:
        return _refused(call, RULE_MALFORMED, f"{call.problem}; refused because it cannot be checked")
    if call.phase == "response":
        return CallVerdict.ok(ALLOW_NOT_POLICED, method=call.method)
    if call.kind == KIND_UNCHECKED:
        return _refused(
            call,
            RULE_UNCHECKED,
            "it can move funds, sign for the node's keys or mint credentials, and no l2custody rule checks it; "
            "use the break-glass admin macaroon if it is really needed",
        )
    check = _CHECKS.get(call.kind)
    if call.phase != "request" or check is None:
        return CallVerdict.ok(ALLOW_NOT_POLICED, method=call.method)
    return _check_fee_rate(call, facts) or check(call, facts)
