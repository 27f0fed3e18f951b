"""lnd's RPC middleware (``RegisterRPCMiddleware``): see and answer every request lnd runs.

How lnd 0.20.1 drives it (``rpcperms/interceptor.go``, ``middleware_handler.go``,
``rpcserver.go RegisterRPCMiddleware``; checked on the real daemon by
tests/integration/test_enforce_lnd.py):

- lnd must run with ``rpcmiddleware.enable=true``. The first message we send is
  a ``MiddlewareRegistration``: a name (5+ characters) and either a custom
  caveat name (5+ characters) or ``read_only_mode``. lnd answers ``reg_complete``.
- A caveat middleware gets the requests made with macaroons carrying
  ``lnd-custom <caveat>``; a read-only one gets every request, whatever the
  macaroon. Each request arrives as ``RPCMessage{method_full_uri, type_name,
  serialized}`` (the protobuf bytes); streams first as ``stream_auth``, then
  one ``request`` per client message; responses come too.
- lnd waits (``rpcmiddleware.intercepttimeout``, 2 s by default) for an
  ``InterceptFeedback`` with the same ``ref_msg_id``: ``error`` non-empty refuses
  the request with that text. lnd honours an error from a read-only middleware
  as well; it only ignores a read-only middleware's *replacement*.
- While no middleware is registered for a caveat, lnd refuses every macaroon
  that carries it (``macaroons.CustomChecker``); with
  ``rpcmiddleware.addmandatory=<name>``, lnd refuses every request, with any
  macaroon, until ``<name>`` is registered (the State service excepted). In
  v0.20.1 only one middleware may register per caveat name, and read-only
  middlewares all count as caveat "" (so at most one of them).

:func:`decode` turns an intercepted message into a :class:`~l2custody.backends.rpc_calls.RpcCall`
with the stubs of lnd-grpc-client (lnd ~0.16). A policed request holding a
field those stubs do not know (lnd 0.20 added some, e.g. FundPsbt
``coin_select``) cannot be judged, so it is marked unreadable and refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from l2custody.backends.lnd.duplex import DuplexStream
from l2custody.backends.rpc_calls import (
    KIND_ACCEPT,
    KIND_CLOSE,
    KIND_FEE,
    KIND_HARMLESS,
    KIND_OPEN,
    KIND_OTHER,
    KIND_PAY,
    KIND_PSBT,
    KIND_TX,
    KIND_UNCHECKED,
    CallVerdict,
    Payment,
    RpcCall,
)
from l2custody.errors import L2CustodyError

LN, WK = "/lnrpc.Lightning/", "/walletrpc.WalletKit/"

#: Permissions that move on-chain funds, sign for the node's keys or mint macaroons.
SENSITIVE_PERMISSIONS = frozenset(
    {("onchain", "write"), ("signer", "generate"), ("macaroon", "generate"), ("macaroon", "write")}
)

#: Methods that need such a permission but cannot send funds anywhere but the node itself.
HARMLESS = frozenset(
    {
        WK + "LeaseOutput",
        WK + "ReleaseOutput",
        WK + "LabelTransaction",
        WK + "SignMessageWithAddr",
        WK + "RemoveTransaction",
        LN + "FundingStateStep",  # node-wallet coins reach a PSBT only through Sign/FinalizePsbt (checked)
    }
)

# method -> (module, request type) for the methods the rules read
_TYPES: dict[str, tuple[str, str]] = {
    LN + "SendCoins": ("ln", "SendCoinsRequest"),
    LN + "SendMany": ("ln", "SendManyRequest"),
    LN + "CloseChannel": ("ln", "CloseChannelRequest"),
    LN + "OpenChannel": ("ln", "OpenChannelRequest"),
    LN + "OpenChannelSync": ("ln", "OpenChannelRequest"),
    LN + "BatchOpenChannel": ("ln", "BatchOpenChannelRequest"),
    LN + "ChannelAcceptor": ("ln", "ChannelAcceptResponse"),
    WK + "SendOutputs": ("wk", "SendOutputsRequest"),
    WK + "FundPsbt": ("wk", "FundPsbtRequest"),
    WK + "SignPsbt": ("wk", "SignPsbtRequest"),
    WK + "FinalizePsbt": ("wk", "FinalizePsbtRequest"),
    WK + "PublishTransaction": ("wk", "Transaction"),
    WK + "BumpFee": ("wk", "BumpFeeRequest"),
}
POLICED = frozenset(_TYPES)


def sensitive_methods(method_permissions: Mapping[str, frozenset[tuple[str, str]]]) -> frozenset[str]:
    """The methods (full URIs) that need a sensitive permission, from lnd's ListPermissions."""
    return frozenset(m for m, perms in method_permissions.items() if perms & SENSITIVE_PERMISSIONS)


def _fee(*rates: tuple[float, float]) -> float | None:
    """The first rate set, in sat/vB (each given as (value, factor to sat/vB))."""
    for value, factor in rates:
        if value:
            return float(value) * factor
    return None


def _unknown_fields(msg: Any) -> list[int]:
    """Field numbers in ``msg`` (and its sub-messages) that our stubs do not know."""
    from google.protobuf.message import Message  # type: ignore[import-untyped]
    from google.protobuf.unknown_fields import UnknownFieldSet  # type: ignore[import-untyped]

    found = [f.field_number for f in UnknownFieldSet(msg)]
    for desc, value in msg.ListFields():
        if desc.message_type is None:
            continue
        if desc.message_type.GetOptions().map_entry:
            values = list(value.values()) if desc.message_type.fields_by_name["value"].message_type else []
        elif isinstance(value, Message):
            values = [value]
        else:  # a repeated message field
            values = list(value)
        for item in values:
            found += _unknown_fields(item)
    return found


def _send_coins(msg: Any) -> dict[str, Any]:
    amount = None if msg.send_all else int(msg.amount)
    fee = _fee((msg.sat_per_vbyte, 1), (msg.sat_per_byte, 1))
    return {"kind": KIND_PAY, "payments": (Payment("addr", msg.addr, None, amount),), "fee_rate_sat_vb": fee}


def _send_many(msg: Any) -> dict[str, Any]:
    pays = tuple(Payment(f"AddrToAmount[{a}]", a, None, int(v)) for a, v in sorted(msg.AddrToAmount.items()))
    return {"kind": KIND_PAY, "payments": pays, "fee_rate_sat_vb": _fee((msg.sat_per_vbyte, 1), (msg.sat_per_byte, 1))}


def _send_outputs(msg: Any) -> dict[str, Any]:
    pays = tuple(Payment(f"outputs[{i}]", None, bytes(o.pk_script), int(o.value)) for i, o in enumerate(msg.outputs))
    return {"kind": KIND_PAY, "payments": pays, "fee_rate_sat_vb": _fee((msg.sat_per_kw, 0.004))}


def _fund_psbt(msg: Any) -> dict[str, Any]:
    fee = _fee((msg.sat_per_vbyte, 1))
    template = msg.WhichOneof("template")
    if template == "raw":
        pays = tuple(Payment(f"raw.outputs[{a}]", a, None, int(v)) for a, v in sorted(msg.raw.outputs.items()))
        return {"kind": KIND_PAY, "payments": pays, "fee_rate_sat_vb": fee}
    if template == "psbt":
        return {"kind": KIND_PSBT, "psbt": bytes(msg.psbt), "fee_rate_sat_vb": fee}
    return {"problem": "FundPsbt without a template l2custody can read (raw or psbt)"}


def _close(msg: Any) -> dict[str, Any]:
    return {
        "kind": KIND_CLOSE,
        "delivery_address": msg.delivery_address or None,
        "force": bool(msg.force),
        "fee_rate_sat_vb": _fee((msg.sat_per_vbyte, 1), (msg.sat_per_byte, 1), (msg.max_fee_per_vbyte, 1)),
        "details": {"channel_point": f"{msg.channel_point.funding_txid_str}:{msg.channel_point.output_index}"},
    }


def _open(msg: Any) -> dict[str, Any]:
    return {
        "kind": KIND_OPEN,
        "close_addresses": (msg.close_address,),
        "external_funding": msg.HasField("funding_shim"),
        "fee_rate_sat_vb": _fee((msg.sat_per_vbyte, 1), (msg.sat_per_byte, 1)),
        "details": {
            "peer": bytes(msg.node_pubkey).hex() or msg.node_pubkey_string,
            "amount_sat": msg.local_funding_amount,
        },
    }


_READERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "SendCoins": _send_coins,
    "SendMany": _send_many,
    "SendOutputs": _send_outputs,
    "FundPsbt": _fund_psbt,
    "SignPsbt": lambda msg: {"kind": KIND_PSBT, "psbt": bytes(msg.funded_psbt)},
    "FinalizePsbt": lambda msg: {"kind": KIND_PSBT, "psbt": bytes(msg.funded_psbt)},
    "PublishTransaction": lambda msg: {"kind": KIND_TX, "raw_tx": bytes(msg.tx_hex)},
    "CloseChannel": _close,
    "OpenChannel": _open,
    "OpenChannelSync": _open,
    "BatchOpenChannel": lambda msg: {
        "kind": KIND_OPEN,
        "close_addresses": tuple(c.close_address for c in msg.channels),
        "fee_rate_sat_vb": _fee((msg.sat_per_vbyte, 1)),
    },
    "ChannelAcceptor": lambda msg: {
        "kind": KIND_ACCEPT,
        "close_addresses": (msg.upfront_shutdown,) if msg.accept else (),
    },
    "BumpFee": lambda msg: {"kind": KIND_FEE, "fee_rate_sat_vb": _fee((msg.sat_per_vbyte, 1), (msg.sat_per_byte, 1))},
}


def _content(method: str, msg: Any) -> dict[str, Any]:
    """The fields of a policed request the rules read."""
    return _READERS[method.rsplit("/", 1)[-1]](msg)


def decode(
    node: str,
    raw: Any,
    modules: Mapping[str, Any],
    sensitive: frozenset[str] | None,
    caveat: str | None,
) -> RpcCall:
    """``lnrpc.RPCMiddlewareRequest`` -> RpcCall (``modules``: {"ln": lightning_pb2, "wk": walletkit_pb2}).

    Never raises for a bad message: an unreadable policed request comes back
    with ``problem`` set (the rules refuse it). ``sensitive`` None: lnd's
    permission table is not loaded yet, so a method we cannot class is refused.
    """
    which = raw.WhichOneof("intercept_type")
    if which == "stream_auth":
        method = raw.stream_auth.method_full_uri
        phase = "stream-auth"
    elif which in ("request", "response"):
        method = getattr(raw, which).method_full_uri
        phase = which
    else:
        return RpcCall(node, "", str(which), caveat, problem=f"an intercept of unknown type {which!r}")
    if sensitive is None and phase != "response" and method not in HARMLESS and method not in POLICED:
        problem = "l2custody is still loading lnd's permission table (it just registered); retry in a moment"
        return RpcCall(node, method, phase, caveat, kind=KIND_UNCHECKED, problem=problem)
    kind = (
        KIND_HARMLESS
        if method in HARMLESS
        else "policed"
        if method in POLICED
        else KIND_UNCHECKED
        if method in (sensitive or frozenset())
        else KIND_OTHER
    )
    if phase != "request" or kind != "policed":
        return RpcCall(node, method, phase, caveat, kind=KIND_OTHER if kind == "policed" else kind)
    module, type_name = _TYPES[method]
    pb = modules[module]
    message = raw.request
    expected = f"{pb.DESCRIPTOR.package}.{type_name}"
    if message.type_name != expected:
        return RpcCall(
            node, method, phase, caveat, kind=KIND_UNCHECKED, problem=f"a {message.type_name} where {expected} belongs"
        )
    try:
        msg = getattr(pb, type_name).FromString(message.serialized)
        unknown = _unknown_fields(msg)
        if unknown:
            return RpcCall(
                node,
                method,
                phase,
                caveat,
                kind=KIND_UNCHECKED,
                problem=(
                    f"the request sets field(s) {sorted(set(unknown))} that l2custody's lnd protos do not know, "
                    "so it cannot be checked"
                ),
            )
        return RpcCall(node, method, phase, caveat, **_content(method, msg))
    except Exception as exc:  # undecodable: refused by the rules
        return RpcCall(node, method, phase, caveat, kind=KIND_UNCHECKED, problem=f"cannot decode the request: {exc}")


def feedback(ln: Any, msg_id: int, verdict: CallVerdict) -> Any:
    """CallVerdict -> ``RPCMiddlewareResponse`` (a refusal carries its message; nothing is replaced)."""
    return ln.RPCMiddlewareResponse(
        ref_msg_id=msg_id, feedback=ln.InterceptFeedback(error="" if verdict.allow else verdict.message)
    )


def intercept_calls(
    node: str,
    modules: Mapping[str, Any],
    stub: Any,
    translate: Callable[[Any, str], L2CustodyError],
    registration: tuple[str, str | None],
    judge: Callable[[Any], CallVerdict],
    stop: threading.Event,
    *,
    on_registered: Callable[[], None] | None = None,
) -> None:
    """Register as middleware ``registration`` = (name, caveat name or None for read-only) on lnd
    ``node`` and answer every intercept with ``judge(raw RPCMiddlewareRequest)`` until ``stop``.

    ``judge`` must not raise (the caller wraps it to fail closed). Raises
    NodeUnreachable/NodeAuthError/NodeError when the stream fails.
    """
    import grpc

    ln = modules["ln"]
    name, caveat_name = registration
    register = ln.RPCMiddlewareResponse(
        register=ln.MiddlewareRegistration(
            middleware_name=name,
            custom_macaroon_caveat_name=caveat_name or "",
            read_only_mode=caveat_name is None,
        )
    )
    stream = DuplexStream(stub.RegisterRPCMiddleware, stop, f"middleware-stop-{node}", register)
    try:
        for raw in stream.call:
            if raw.WhichOneof("intercept_type") == "reg_complete":
                if on_registered is not None:
                    on_registered()
                continue
            stream.send(feedback(ln, raw.msg_id, judge(raw)))
    except grpc.RpcError as exc:
        if not stream.ended_by_stop(exc):
            raise translate(exc, f"register RPC middleware {name!r}") from None
    finally:
        stream.close()
