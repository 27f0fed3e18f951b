"""What the plugin reads from lightningd's JSON-RPC: channels (``listpeerchannels``)
and the node wallet's addresses (``listaddresses``, lightningd >= v24.11).

:class:`RpcNodeLookup` answers :class:`~l2custody.custody.cln_policy.decision.NodeLookup`
over any ``call(method, params) -> dict`` (the plugin passes pyln's
``LightningRpc.call``), so this module never imports pyln. Fields relied on
(CLN ``doc/schemas/listpeerchannels.json``): ``peer_id``, ``channel_id``,
``short_channel_id``, ``state``, ``opener``, ``private``, ``funding_txid``,
``funding_outnum``, ``inflight[].funding_txid/funding_outnum``, ``total_msat``,
``to_us_msat``, ``close_to`` (hex script), ``close_to_addr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Call = Callable[[str, dict[str, Any]], Any]


def _msat_to_sat(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):  # "1000msat" (old pyln / json) or plain digits
        value = value[:-4] if value.endswith("msat") else value
    return int(value) // 1000


@dataclass(frozen=True)
class ClnChannel:
    """One channel as ``listpeerchannels`` reports it (amounts in sat)."""

    peer_id: str
    channel_id: str | None
    short_channel_id: str | None
    state: str
    opener: str | None  # "local" | "remote"
    private: bool | None
    funding_txid: str | None
    funding_outnum: int | None
    total_sat: int | None
    to_us_sat: int | None
    close_to: str | None  # hex scriptPubKey of the upfront close script
    close_to_addr: str | None
    inflight: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_json(cls, ch: dict[str, Any]) -> ClnChannel:
        inflight = tuple(
            (str(f["funding_txid"]), int(f["funding_outnum"]))
            for f in ch.get("inflight") or ()
            if f.get("funding_txid") is not None and f.get("funding_outnum") is not None
        )
        outnum = ch.get("funding_outnum")
        return cls(
            peer_id=str(ch["peer_id"]),
            channel_id=ch.get("channel_id"),
            short_channel_id=ch.get("short_channel_id"),
            state=str(ch.get("state", "UNKNOWN")),
            opener=ch.get("opener"),
            private=ch.get("private"),
            funding_txid=ch.get("funding_txid"),
            funding_outnum=None if outnum is None else int(outnum),
            total_sat=_msat_to_sat(ch.get("total_msat")),
            to_us_sat=_msat_to_sat(ch.get("to_us_msat")),
            close_to=ch.get("close_to"),
            close_to_addr=ch.get("close_to_addr"),
            inflight=inflight,
        )

    def outpoints(self) -> set[tuple[str, int]]:
        """Every funding outpoint of the channel (confirmed or in flight)."""
        found = set(self.inflight)
        if self.funding_txid is not None and self.funding_outnum is not None:
            found.add((self.funding_txid, self.funding_outnum))
        return found


def parse_channels(result: dict[str, Any]) -> list[ClnChannel]:
    """The channels of a ``listpeerchannels`` result."""
    return [ClnChannel.from_json(ch) for ch in result.get("channels", [])]


class RpcNodeLookup:
    """The node's answers, fetched on demand over ``call`` (errors propagate)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self._outpoints: set[tuple[str, int]] | None = None

    def funding_outpoints(self) -> set[tuple[str, int]]:
        if self._outpoints is None:
            found: set[tuple[str, int]] = set()
            for ch in parse_channels(self.call("listpeerchannels", {})):
                found |= ch.outpoints()
            self._outpoints = found
        return self._outpoints

    def owns_address(self, address: str) -> bool:
        result = self.call("listaddresses", {"address": address})
        return any(address in (a.get("bech32"), a.get("p2tr")) for a in result.get("addresses", []))
