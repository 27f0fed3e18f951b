"""The NodeBackend for Core Lightning: JSON-RPC over lightningd's unix socket
with pyln-client.

Every call goes through ``ClnConnection`` (``cln/rpc.py``): a timeout per call,
``pyln.client.RpcError`` and socket errors translated into ``l2custody.errors``;
JSON is turned into our dataclasses by ``cln/convert.py``. Nothing pyln-typed
leaves this module.

Facts about lightningd this module relies on (checked on v25.12.1, see
tests/integration/test_cln_backend.py):
- PSBT funding: ``fundchannel_start(close_to=...)`` answers ``close_to`` only
  when the peer negotiated option_upfront_shutdown_script; otherwise lightningd
  forgets it on its side, but has already sent it to the peer in open_channel,
  and a peer may enforce it (lightningd itself does as a receiver): the two
  sides then disagree on the close script. So the peer's init features decide
  before anything is started, and the answer is still compared with our script.
  ``fundchannel_complete`` with the unsigned PSBT returns once the peer's
  funding_signed arrived (``commitments_secured``); nothing is broadcast.
- From v25.12 we pass ``withhold: true`` (see ``cln/convert.complete_params``)
  and hand the signed PSBT to ``sendpsbt`` (``publish_psbt``); before v25.12
  the parameter does not exist and is left out.
- One negotiation per peer, in either direction: a second ``fundchannel_start``
  fails with "Already funding channel", a peer opening to us meanwhile gets
  "Multiple simultaneous opens not supported", and ``fundchannel_cancel`` (our
  abandon) addresses "the" unconfirmed channel of a peer; so we refuse to start
  a second unconfirmed channel to the same peer.
- ``close`` with ``unilateraltimeout`` 0 never turns into a force close;
  lightningd has no immediate force close: ``unilateraltimeout`` 1 lets a
  responsive peer settle cooperatively within that second.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from l2custody.backends.base import (
    AnchorReserve,
    Capability,
    ChannelEvent,
    ChannelInfo,
    ChannelState,
    CloseResult,
    FundingIntent,
    NodeBackend,
    NodeInfo,
    OnchainBalance,
    OpenRequest,
    SweepResult,
    check_abandon_request,
    check_close_request,
    parse_channel_point,
)
from l2custody.backends.cln import convert as conv
from l2custody.backends.cln.rpc import DEFAULT_TIMEOUT, CallTimeout, ClnConnection
from l2custody.errors import (
    BroadcastRejected,
    BroadcastUnknown,
    ChannelNotFound,
    FundingNegotiationLost,
    L2CustodyError,
    NodeError,
    NodeUnreachable,
    NotSupported,
    PeerRefused,
    PsbtError,
    UpfrontShutdownRefused,
    UsageError,
)

NEGOTIATION_TIMEOUT = 90.0  # peer round trips: fundchannel_start/complete, close
EVENT_POLL_SECONDS = 2.0
UPFRONT_SHUTDOWN_BITS = (4, 5)  # BOLT 9 option_upfront_shutdown_script
CANCEL_WAIT = 15.0  # fundchannel_cancel of a secured channel: then the withheld close (abandon_pending)
_CHANNEL_TYPES = {"anchors": [12, 22], "static_remote_key": [12]}


class ClnBackend(NodeBackend):
    """Core Lightning over its lightning-rpc socket. ``ClnBackend(name, rpc_file)`` does no I/O."""

    kind = "cln"
    capabilities = frozenset(Capability) - {Capability.INBOUND_GUARD, Capability.RPC_MIDDLEWARE}

    def __init__(self, name: str, rpc_file: str | Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(name)
        self.conn = ClnConnection(name, Path(rpc_file), timeout)
        self._version: str | None = None
        self._owned: dict[str, bool] = {}  # close_to addresses -> the node's own wallet's?
        self.cancel_wait = CANCEL_WAIT

    def __repr__(self) -> str:
        return f"ClnBackend({self.name!r}, rpc_file={str(self.conn.rpc_file)!r})"

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, action: str, timeout: float | None = None
    ) -> Any:
        """One lightningd command with exactly ``params`` (errors translated)."""
        return self.conn.call(method, params, action=action, timeout=timeout)

    def version(self) -> str:
        """lightningd's version string (``getinfo``), read once."""
        if self._version is None:
            self.info()
        assert self._version is not None
        return self._version

    # --- identity and peers ------------------------------------------------------------
    def info(self) -> NodeInfo:
        info = conv.node_info(self.call("getinfo", action="get node info"))
        self._version = info.version
        return info

    def connect_peer(self, pubkey: str, host: str) -> None:
        if self.is_connected(pubkey):
            return
        self.call(
            "connect", {"id": f"{pubkey}@{host}"}, action=f"connect to {pubkey}@{host}", timeout=NEGOTIATION_TIMEOUT
        )

    def is_connected(self, pubkey: str) -> bool:
        return self._peer(pubkey) is not None

    def _peer(self, pubkey: str) -> dict[str, Any] | None:
        """The ``listpeers`` entry of a connected peer (netaddr, init features), else None."""
        peers = self.call("listpeers", {"id": pubkey}, action="list peers")["peers"]
        return next((p for p in peers if p.get("id") == pubkey and p.get("connected")), None)

    # --- channels -------------------------------------------------------------------------
    def _entries(self, peer: str | None = None) -> list[dict[str, Any]]:
        params = {"id": peer} if peer else {}
        return list(self.call("listpeerchannels", params, action="list channels")["channels"])

    def _entry(self, channel_point: str) -> dict[str, Any]:
        txid, vout = parse_channel_point(channel_point)
        for e in self._entries():
            if e.get("funding_txid") == txid and int(e.get("funding_outnum", -1)) == vout:
                return e
        raise ChannelNotFound(f"node {self.name!r} has no channel {channel_point}; see `l2custody channel list`")

    def list_channels(self, *, include_closed: bool = True) -> list[ChannelInfo]:
        entries = self._entries()
        own = self._own_addresses(e.get("close_to_addr") for e in entries)
        out = [c for c in (conv.channel_info(self.name, e, own) for e in entries) if c is not None]
        if include_closed:
            seen = {c.channel_point for c in out}
            closed = self.call("listclosedchannels", {}, action="list closed channels")["closedchannels"]
            for entry in closed:
                info = conv.closed_channel_info(self.name, entry)
                if info.channel_point not in seen:
                    out.append(info)
        return out

    def _own_addresses(self, addresses: Iterable[str | None]) -> set[str]:
        """Which of ``addresses`` belong to the node's own wallet (``listaddresses``,
        v24.11+; remembered, ownership does not change). On older nodes none are
        known, so a default close_to shows as committed (the safe side)."""
        for address in {a for a in addresses if a} - self._owned.keys():
            try:
                found = self.call("listaddresses", {"address": address}, action="look up a close address")
            except NotSupported:
                return set()
            self._owned[address] = bool(found.get("addresses"))
        return {a for a, mine in self._owned.items() if mine}

    def record_withheld_funding(self) -> tuple[str, ...]:
        def point(e: dict[str, Any]) -> str:
            return f"{e['funding_txid']}:{e['funding_outnum']}"

        tried = set()
        for e in self._entries():
            if _withheld_on_chain(e):
                self._repair_withheld(e)
                tried.add(point(e))
        if not tried:
            return ()
        # lightningd clears the flag when it takes the PSBT, even when its own broadcast is
        # refused because the transaction is already confirmed: ask it what it holds now.
        return tuple(sorted(point(e) for e in self._entries() if point(e) in tried and not _withheld(e)))

    def _repair_withheld(self, entry: dict[str, Any]) -> bool:
        """A channel still marked "funding withheld" whose funding is confirmed (it
        was broadcast without ``sendpsbt``): hand lightningd the signed PSBT rebuilt
        from the block, so that closing it produces a closing transaction.
        Returns whether ``sendpsbt`` succeeded (its broadcast is refused for a transaction
        already confirmed, yet lightningd has taken the PSBT then too)."""
        from l2custody.backends.cln.funding import finalized_from_block, scid_position

        height, index = scid_position(str(entry["short_channel_id"]))
        try:
            block = self.call("getrawblockbyheight", {"height": height}, action="read the funding block")
            psbt = finalized_from_block(entry["funding"]["psbt"], block["block"], index, entry["funding_txid"])
            self.call("sendpsbt", {"psbt": psbt}, action="record the funding transaction")
        except L2CustodyError:
            return False
        return True

    def close_channel(
        self,
        channel_point: str,
        *,
        delivery_address: str | None = None,
        fee_rate: float | None = None,
        force: bool = False,
    ) -> CloseResult:
        entry = self._entry(channel_point)
        ch = conv.channel_info(self.name, entry, self._own_addresses([entry.get("close_to_addr")]))
        assert ch is not None
        check_close_request(
            ch,
            channel_point,
            delivery_address=delivery_address,
            fee_rate=fee_rate,
            force=force,
            implementation="Core Lightning",
        )
        if _withheld(entry) and entry.get("short_channel_id"):
            self._repair_withheld(entry)  # lightningd may take it even when its broadcast is refused
            entry = self._entry(channel_point)
        if _withheld(entry):
            raise NodeError(
                f"node {self.name!r} still marks the funding of {channel_point} as withheld (never "
                "published through it): closing now would make it forget the channel without a closing "
                "transaction. Publish the funding PSBT first (`l2custody session broadcast`)."
            )
        if not force and not entry.get("peer_connected"):
            raise PeerRefused(
                f"the peer of {channel_point} ({ch.peer_pubkey}) is not connected to {self.name!r}; a "
                "cooperative close needs it online. Reconnect it (or force close, which locks the funds "
                "for the peer's to_self_delay)."
            )
        params: dict[str, Any] = {"id": entry["channel_id"], "unilateraltimeout": 1 if force else 0}
        if delivery_address and not ch.close_address:
            params["destination"] = delivery_address
        if fee_rate is not None:
            from l2custody.backends.cln.sweep import feerate_param

            rate = feerate_param(fee_rate)
            params["feerange"] = [rate, rate]
        to = delivery_address or ch.close_address
        try:
            result = self.call("close", params, action=f"close channel {channel_point}", timeout=NEGOTIATION_TIMEOUT)
        except CallTimeout:  # lightningd goes on negotiating; the channel list will show the close
            state = ChannelState.FORCE_CLOSING if force else ChannelState.CLOSING
            return CloseResult(channel_point, None, state, None if force else to)
        kind = result.get("type")
        txids = result.get("txids") or ([result["txid"]] if result.get("txid") else [])
        if kind == "unilateral":
            return CloseResult(channel_point, txids[-1] if txids else None, ChannelState.FORCE_CLOSING, None)
        if kind == "unopened":
            return CloseResult(channel_point, None, ChannelState.CLOSED, None)
        return CloseResult(channel_point, txids[-1] if txids else None, ChannelState.CLOSING, to)

    # --- funding ----------------------------------------------------------------------------
    def _check_one_pending(self, peer: str) -> None:
        for e in self._entries(peer):
            state = str(e.get("state"))
            if e.get("opener") != "local":
                continue
            if state in conv.NEGOTIATING:
                raise UsageError(
                    f"node {self.name!r} is already negotiating a channel with {peer}; Core Lightning "
                    "allows one pending open per peer. Finish or abort that one (`l2custody session "
                    "list`), or put channels to the same peer in separate sessions."
                )
            if state == "CHANNELD_AWAITING_LOCKIN":
                raise UsageError(
                    f"node {self.name!r} already has an unconfirmed channel to {peer} "
                    f"({e.get('funding_txid')}:{e.get('funding_outnum')}). Core Lightning keeps one pending "
                    "open per peer safe to abort (fundchannel_cancel cannot tell two apart): wait until it "
                    "confirms, or abort its session, then open again."
                )

    def open_start(self, request: OpenRequest) -> FundingIntent:
        from embit.script import address_to_scriptpubkey

        peer = request.peer_pubkey
        self._check_one_pending(peer)
        params: dict[str, Any] = {"id": peer, "amount": request.amount_sat, "announce": not request.private}
        if request.close_address:
            params["close_to"] = request.close_address
        if request.push_sat:
            params["push_msat"] = request.push_sat * 1000
        if request.commitment_type:
            if request.commitment_type not in _CHANNEL_TYPES:
                raise UsageError(
                    f"commitment type {request.commitment_type!r} is not offered for Core Lightning: use "
                    f"one of {sorted(_CHANNEL_TYPES)} (or none: the node's default)"
                )
            params["channel_type"] = _CHANNEL_TYPES[request.commitment_type]
        close_address = request.close_address
        if close_address and not self._peer_offers(peer, UPFRONT_SHUTDOWN_BITS):
            # Decided before asking: lightningd would send close_to in open_channel anyway and only
            # forget it on its own side, while a peer may still enforce it.
            if not request.allow_no_upfront_shutdown:
                raise UpfrontShutdownRefused(
                    f"peer {peer} does not offer option_upfront_shutdown_script, so node {self.name!r} "
                    f"cannot commit the close address {close_address}; nothing was started. Allow it "
                    "explicitly (--allow-no-upfront-shutdown) to open without one (a cooperative close "
                    "then takes a destination at close time)."
                )
            del params["close_to"]
            close_address = None
        result = self.call("fundchannel_start", params, action=f"open a channel to {peer}", timeout=NEGOTIATION_TIMEOUT)
        if close_address and result.get("close_to") != address_to_scriptpubkey(close_address).data.hex():
            self._cancel_negotiation(peer)
            raise UpfrontShutdownRefused(
                f"node {self.name!r} did not commit the close address {close_address} with peer {peer} "
                f"(it answered close_to={result.get('close_to')}); the open was cancelled."
            )
        return FundingIntent(
            node=self.name,
            kind=self.kind,
            peer_pubkey=peer,
            intent_id=peer,
            funding_address=str(result["funding_address"]),
            funding_script=bytes.fromhex(str(result["scriptpubkey"])),
            amount_sat=request.amount_sat,
            close_address=close_address,
            private=request.private,
            push_sat=request.push_sat,
        )

    def _peer_offers(self, peer: str, bits: tuple[int, int]) -> bool:
        """Whether the connected peer's init features carry either bit (compulsory, optional)."""
        entry = self._peer(peer)
        if entry is None:
            return True  # not connected: fundchannel_start will say so
        features = int(str(entry.get("features") or "0"), 16)
        return any(features >> b & 1 for b in bits)

    def _cancel_negotiation(self, peer: str) -> None:
        try:
            self.call("fundchannel_cancel", {"id": peer}, action="cancel the channel negotiation")
        except FundingNegotiationLost:
            pass  # gone already (peer disconnected): nothing left to cancel

    def _complete(self, intent: FundingIntent, psbt: bytes) -> str:
        """fundchannel_complete; return the channel point once lightningd lists it as pending."""
        from l2custody.backends.lnd.funding import funding_outpoint

        expected = funding_outpoint(psbt, intent.funding_script, intent.amount_sat)
        params = conv.complete_params(intent.peer_pubkey, base64.b64encode(psbt).decode(), self.version())
        try:
            self.call(
                "fundchannel_complete",
                params,
                action="secure the channel (fundchannel_complete)",
                timeout=NEGOTIATION_TIMEOUT,
            )
        except FundingNegotiationLost:
            if self._poll_pending(expected, 0.0):  # secured by an earlier attempt
                return expected
            raise
        except CallTimeout:
            if self._poll_pending(expected, NEGOTIATION_TIMEOUT):  # lightningd finished after all
                return expected
            raise NodeUnreachable(
                f"node {self.name!r} did not finish securing {expected} in time; whether the peer "
                "counter-signed is unknown. Nothing was broadcast: check `l2custody session status`."
            ) from None
        if not self._poll_pending(expected, 10.0):
            raise NodeError(
                f"node {self.name!r} reported the channel secured but does not list {expected} as pending; "
                "do not broadcast, investigate"
            )
        return expected

    def _poll_pending(self, channel_point: str, timeout: float) -> bool:
        txid, vout = parse_channel_point(channel_point)
        deadline = time.monotonic() + timeout
        while True:
            for e in self._entries():
                if e.get("funding_txid") == txid and int(e.get("funding_outnum", -1)) == vout:
                    return str(e.get("state")) in ("CHANNELD_AWAITING_LOCKIN", "CHANNELD_NORMAL")
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def open_secure(self, intent: FundingIntent, unsigned_psbt: bytes) -> str:
        return self._complete(intent, unsigned_psbt)

    def open_finalize_interactive(self, intent: FundingIntent, signed_psbt: bytes) -> str:
        point = self._complete(intent, signed_psbt)
        self.publish_psbt(signed_psbt)
        return point

    def open_cancel(self, intent: FundingIntent) -> None:
        peer = intent.peer_pubkey
        entries = [e for e in self._entries(peer) if e.get("opener") == "local"]
        if any(str(e.get("state")) in conv.NEGOTIATING for e in entries):
            self._cancel_negotiation(peer)
            return
        for e in entries:
            if str(e.get("state")) == "CHANNELD_AWAITING_LOCKIN" and _pays(e, intent.funding_script):
                raise UsageError(
                    f"the negotiation with {peer} is already secured as pending channel "
                    f"{e['funding_txid']}:{e['funding_outnum']}; cancelling is no longer possible: abandon "
                    "the channel instead (nothing has been broadcast)"
                )
        # Nothing being negotiated with this peer: nothing to cancel.

    def abandon_pending(self, channel_point: str) -> None:
        entry = self._entry(channel_point)
        ch = conv.channel_info(self.name, entry)
        assert ch is not None
        check_abandon_request(ch, channel_point)
        others = [
            f"{e['funding_txid']}:{e['funding_outnum']}"
            for e in self._entries(ch.peer_pubkey)
            if e.get("opener") == "local"
            and str(e.get("state")) == "CHANNELD_AWAITING_LOCKIN"
            and e.get("channel_id") != entry.get("channel_id")
        ]
        if others:
            raise NodeError(
                f"node {self.name!r} has another unconfirmed channel to {ch.peer_pubkey} ({', '.join(others)}); "
                "Core Lightning's fundchannel_cancel cannot tell them apart. Abandon them one at a time "
                "after the other confirms, or by hand."
            )
        action = f"abandon pending channel {channel_point}"
        try:
            self.call("fundchannel_cancel", {"id": ch.peer_pubkey}, action=action, timeout=self.cancel_wait)
            return
        except CallTimeout:
            pass
        # fundchannel_cancel waits for the peer to reestablish the channel, which lnd does for an
        # unconfirmed channel only after the funding confirms (seen after a lightningd restart). A
        # withheld channel (v25.12+) can instead be closed: lightningd forgets it without any
        # transaction. The peer is not told; it forgets its side after 2016 blocks.
        current = next(
            (e for e in self._entries(ch.peer_pubkey) if e.get("channel_id") == entry.get("channel_id")), None
        )
        if current is None:
            return  # the cancel went through after all
        if not _withheld(current):
            raise NodeUnreachable(
                f"node {self.name!r} is waiting for peer {ch.peer_pubkey} to reestablish {channel_point} before "
                "it can cancel it (the cancel stays queued in lightningd). Nothing was broadcast; reconnect the "
                "peer, or run `lightning-cli fundchannel_cancel` once it is back."
            )
        self.call(
            "close", {"id": entry["channel_id"], "unilateraltimeout": 1}, action=action, timeout=NEGOTIATION_TIMEOUT
        )

    def publish(self, raw_tx: bytes, *, label: str = "") -> str:
        from embit.transaction import Transaction

        txid = Transaction.parse(raw_tx).txid().hex()
        try:
            result = self.call(
                "sendrawtransaction", {"tx": raw_tx.hex(), "allowhighfees": False}, action=f"publish {txid}"
            )
        except CallTimeout:
            raise BroadcastUnknown(
                f"publishing {txid} through {self.name!r} timed out: it may or may not have gone out. "
                "Check the chain (or the mempool) before trying again."
            ) from None
        if not result.get("success"):
            raise BroadcastRejected(f"{self.name!r} (bitcoind) refused to publish {txid}: {result.get('errmsg')}")
        return txid

    def publish_psbt(self, signed_psbt: bytes) -> str:
        from l2custody.wallet.psbt import load_psbt

        try:
            txid = load_psbt(signed_psbt).tx.txid().hex()
        except PsbtError as exc:
            raise PsbtError(f"cannot parse the PSBT to publish: {exc.message}") from None
        try:
            result = self.call("sendpsbt", {"psbt": base64.b64encode(signed_psbt).decode()}, action=f"publish {txid}")
        except CallTimeout:
            raise BroadcastUnknown(
                f"publishing {txid} through {self.name!r} (sendpsbt) timed out: it may or may not have "
                "gone out. Check the chain; publishing again is safe."
            ) from None
        except NodeError as exc:
            if "not finalizeable" in exc.message.lower():
                raise PsbtError(
                    f"{self.name!r} cannot finalize the PSBT of {txid}: signatures are missing. Nothing "
                    "was sent; collect the remaining signatures first."
                ) from None
            raise
        return str(result.get("txid", txid))

    # --- hot wallet ---------------------------------------------------------------------------
    def _emergency_sat(self) -> int:
        try:
            configs = self.call("listconfigs", {"config": "min-emergency-msat"}, action="read the emergency reserve")
        except UsageError:  # before v23.08 there is no such option: the default applies
            return conv.DEFAULT_EMERGENCY_SAT
        return conv.emergency_reserve_sat(configs)

    def onchain_balance(self) -> OnchainBalance:
        reserve = self._emergency_sat() if conv.has_anchor_channel(self._entries()) else 0
        return conv.onchain_balance(self.call("listfunds", {}, action="read the wallet balance"), reserve)

    def anchor_reserve(self, additional_public_channels: int = 0) -> AnchorReserve:
        needed = additional_public_channels > 0 or conv.has_anchor_channel(self._entries())
        required = self._emergency_sat() if needed else 0
        funds = self.call("listfunds", {}, action="read the wallet balance")
        available = sum(conv.sat(o.get("amount_msat")) for o in conv.spendable_outputs(funds) if not o.get("reserved"))
        return AnchorReserve(required, available, additional_public_channels)

    def sweep_to(
        self, address: str, *, keep_sat: int | None = None, fee_rate: float | None = None, dry_run: bool = False
    ) -> SweepResult:
        from l2custody.backends.cln.sweep import sweep

        return sweep(self, address, keep_sat=keep_sat, fee_rate=fee_rate, dry_run=dry_run)

    def new_address(self) -> str:
        return str(self.call("newaddr", {"addresstype": "bech32"}, action="create a node wallet address")["bech32"])

    def channel_backup(self) -> bytes:
        """``staticbackup``: JSON ``{"format": "cln-staticbackup", "scb": [hex, ...]}``;
        the list is what ``lightning-cli recoverchannel`` takes."""
        scb = self.call("staticbackup", {}, action="export the channel backup")["scb"]
        return json.dumps({"format": "cln-staticbackup", "node": self.name, "scb": list(scb)}).encode()

    def subscribe_channel_events(self) -> Iterator[ChannelEvent]:
        """Changes from now on: polls the channel list every few seconds (lightningd
        offers no stream over its socket) and reports the differences from the
        listing taken by this call. Close the iterator to stop."""
        return self._follow({c.channel_point: c for c in self.list_channels(include_closed=False)})

    def _follow(self, known: dict[str, ChannelInfo]) -> Iterator[ChannelEvent]:
        while True:
            time.sleep(EVENT_POLL_SECONDS)
            try:
                now = {c.channel_point: c for c in self.list_channels(include_closed=False)}
            except NodeUnreachable:
                continue  # lightningd restarting: keep following
            for point, ch in now.items():
                for kind in _changes(known.get(point), ch):
                    yield ChannelEvent(self.name, kind, point, ch)
            for point, old in known.items():
                if point not in now and old.state is not ChannelState.CLOSED:
                    yield ChannelEvent(self.name, "closed", point, None)
            known = now


def _withheld(entry: dict[str, Any]) -> bool:
    return bool((entry.get("funding") or {}).get("withheld"))


def _withheld_on_chain(entry: dict[str, Any]) -> bool:
    funding = entry.get("funding") or {}
    return (
        _withheld(entry)
        and bool(entry.get("short_channel_id"))
        and bool(funding.get("psbt"))
        and entry.get("opener") == "local"
    )


def _pays(entry: dict[str, Any], script: bytes) -> bool:
    """Whether the channel's funding PSBT (v25.12+ lists it) pays ``script`` at its funding output."""
    from l2custody.wallet.psbt import load_psbt

    psbt = (entry.get("funding") or {}).get("psbt")
    if not psbt:
        return False
    try:
        tx = load_psbt(psbt).tx
        return tx.vout[int(entry["funding_outnum"])].script_pubkey.data == script
    except Exception:
        return False


def _changes(old: ChannelInfo | None, new: ChannelInfo) -> list[str]:
    if old is None:
        return (
            ["pending_open"]
            if new.state is ChannelState.PENDING_OPEN
            else ["open"]
            if new.state is ChannelState.OPEN
            else []
        )
    kinds = []
    if old.state is not new.state:
        if new.state is ChannelState.OPEN:
            kinds.append("open")
        elif new.state is ChannelState.CLOSED:
            kinds.append("closed")
    if new.state is ChannelState.OPEN and old.active != new.active:
        kinds.append("active" if new.active else "inactive")
    return kinds
