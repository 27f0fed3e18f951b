"""Inbound channels (``openchannel`` and ``openchannel2`` hooks): the payload as an
:class:`~l2custody.backends.inbound.InboundRequest`, and our answer as the
hook's response.

Payload fields relied on (CLN ``doc/schemas/hook/openchannel.json`` /
``openchannel2.json``): ``id`` (the peer), ``funding_msat`` (v1) or
``their_funding_msat`` (v2), ``push_msat`` (v1 only), ``channel_flags`` (bit 0
= announce), ``to_self_delay``, ``channel_reserve_msat``, ``dust_limit_msat``,
``max_accepted_htlcs``, ``channel_type.bits`` (zero-conf = bit 50/51) and
``channel_id`` (v2). The answer is ``{"result": "continue", "close_to": ...}``
or ``{"result": "reject", "error_message": ...}`` (the peer reads the message).
"""

from __future__ import annotations

from typing import Any

from l2custody.backends.inbound import MAX_ERROR_CHARS, InboundRequest
from l2custody.custody.cln_policy.psbt_check import Malformed

HOOKS = ("openchannel", "openchannel2")
_ZERO_CONF_BITS = {50, 51}


def _msat(payload: dict[str, Any], key: str, default: int | None = None) -> int:
    value = payload.get(key, default)
    if value is None:
        raise Malformed(f"the hook payload has no {key}")
    if isinstance(value, str) and value.endswith("msat"):
        value = value[:-4]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Malformed(f"{key} must be an amount in msat, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise Malformed(f"{key} must be an amount in msat, got {value!r}") from None


def inbound_request(hook: str, payload: Any, node: str) -> InboundRequest:
    """The request a peer made; Malformed names a field we cannot read."""
    if hook not in HOOKS:
        raise Malformed(f"unknown channel hook {hook!r}")
    if not isinstance(payload, dict):
        raise Malformed(f"the {hook} payload must be an object, got {type(payload).__name__}")
    peer = payload.get("id")
    if not isinstance(peer, str) or len(peer) != 66:
        raise Malformed(f"the {hook} payload has no peer id (got {peer!r})")
    funding = _msat(payload, "funding_msat" if hook == "openchannel" else "their_funding_msat")
    bits = set((payload.get("channel_type") or {}).get("bits") or ())
    flags = int(payload.get("channel_flags", 0))
    return InboundRequest(
        node=node,
        peer_pubkey=peer.lower(),
        pending_chan_id=str(payload.get("channel_id") or payload.get("temporary_channel_id") or ""),
        funding_sat=funding // 1000,
        push_sat=_msat(payload, "push_msat", 0) // 1000,
        private=not flags & 1,
        csv_delay=int(payload.get("to_self_delay", 0)),
        commitment_type=",".join((payload.get("channel_type") or {}).get("names") or ()),
        wants_zero_conf=bool(bits & _ZERO_CONF_BITS),
        channel_reserve_sat=_msat(payload, "channel_reserve_msat", 0) // 1000,
        dust_limit_sat=_msat(payload, "dust_limit_msat", 0) // 1000,
        max_accepted_htlcs=int(payload.get("max_accepted_htlcs", 0)),
    )


def accept(close_to: str | None) -> dict[str, Any]:
    """The hook's answer accepting the channel (committing ``close_to`` if given)."""
    return {"result": "continue", "close_to": close_to} if close_to else {"result": "continue"}


def reject(message: str) -> dict[str, Any]:
    """The hook's answer refusing the channel; the peer sees ``message``."""
    return {"result": "reject", "error_message": message[:MAX_ERROR_CHARS]}
