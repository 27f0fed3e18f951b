"""The NodeBackend for lnd: gRPC with the compiled stubs of lnd-grpc-client.

Only ``lndgrpc.compiled.*_pb2`` / ``*_pb2_grpc`` are used (not lndgrpc's
client classes). Every call carries a deadline; every ``grpc.RpcError`` is
translated by ``lnd/connect.translate_rpc_error``; nothing gRPC-typed is
returned.

Facts about lnd this module relies on (checked on lnd 0.20, see
tests/integration/test_lnd_backend.py):
- PSBT funding: ``OpenChannel`` with ``PsbtShim{no_publish}`` streams
  ``psbt_fund``; ``FundingStateStep psbt_verify{skip_finalize}`` makes lnd
  send funding_created at once; the peer's funding_signed makes lnd persist
  the channel as pending and stream ``chan_pending``. lnd never broadcasts a
  no_publish funding tx, not even on restart.
- The anchor reserve is checked in psbt_verify for public anchor channels
  *after* the skip_finalize state change, so a failing check can still leave
  the negotiation running: we check the reserve first (``open_secure``).
- ``AbandonChannel`` with ``pending_funding_shim_only`` refuses PSBT-funded
  channels (lnd only recognises canned shims by their thaw height); the
  ``i_know_what_i_am_doing`` override works on release builds.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# gRPC's C core logs failed TLS handshakes at INFO on stderr, which reads like a
# crash to a CLI user; our errors say it better. Only effective before grpc loads.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402

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
from l2custody.backends.lnd import convert as conv
from l2custody.backends.lnd.connect import LndCredentials, open_channel, rpc, translate_rpc_error
from l2custody.errors import (
    BroadcastRejected,
    BroadcastUnknown,
    ChannelNotFound,
    FundingNegotiationLost,
    InsufficientFunds,
    L2CustodyError,
    NodeError,
    UpfrontShutdownRefused,
    UsageError,
)
from l2custody.networks import reported_network

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.backends.inbound import Decide, InboundRequest
    from l2custody.backends.lnd.funding import OpenStream
    from l2custody.backends.lnd.middleware_client import LndMiddlewareClient

T = TypeVar("T")

NEGOTIATION_TIMEOUT = 90.0  # peer round trips: psbt_fund, chan_pending
_COMMITMENT_NAMES = {"legacy": 1, "static_remote_key": 2, "anchors": 3, "simple_taproot": 5}

# What l2custody calls, for `node check` (CheckMacaroonPermissions per method).
REQUIRED_METHODS = (
    "/lnrpc.Lightning/GetInfo",
    "/lnrpc.Lightning/ConnectPeer",
    "/lnrpc.Lightning/ListPeers",
    "/lnrpc.Lightning/OpenChannel",
    "/lnrpc.Lightning/FundingStateStep",
    "/lnrpc.Lightning/ListChannels",
    "/lnrpc.Lightning/PendingChannels",
    "/lnrpc.Lightning/ClosedChannels",
    "/lnrpc.Lightning/CloseChannel",
    "/lnrpc.Lightning/AbandonChannel",
    "/lnrpc.Lightning/WalletBalance",
    "/lnrpc.Lightning/NewAddress",  # the anchor-reserve pre-flight names an address of the node
    "/lnrpc.Lightning/ExportAllChannelBackups",
    "/lnrpc.Lightning/SubscribeChannelEvents",
    "/walletrpc.WalletKit/RequiredReserve",
    "/walletrpc.WalletKit/ListUnspent",
    "/walletrpc.WalletKit/FundPsbt",
    "/walletrpc.WalletKit/FinalizePsbt",
    "/walletrpc.WalletKit/ReleaseOutput",
    "/walletrpc.WalletKit/PublishTransaction",
    "/walletrpc.WalletKit/EstimateFee",
)


def _in_background(work: Callable[[], T], *, name: str) -> Callable[[], T]:
    """Run ``work`` on a thread now; the returned function waits for its result
    and raises what it raised."""
    box: Future[T] = Future()

    def run() -> None:
        try:
            box.set_result(work())
        except BaseException as exc:  # handed to the caller, who translates it
            box.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return box.result


class LndBackend(NodeBackend):
    """lnd over gRPC. ``LndBackend(name, LndCredentials(...))`` does no I/O."""

    kind = "lnd"
    # PUBLISH_PSBT is for nodes that must be told about the funding broadcast (CLN);
    # lnd learns of a PSBT-funded channel's transaction from the chain.
    capabilities = frozenset(Capability) - {
        Capability.PUBLISH_PSBT,
        Capability.PLUGIN_EVENTS,
        Capability.WITHHELD_FUNDING,
    }

    def __init__(self, name: str, creds: LndCredentials) -> None:
        super().__init__(name)
        self.creds = creds
        self._channel: Any = None
        self._channel_lock = threading.Lock()  # reads may run on several threads at once (report)
        self._streams: dict[str, OpenStream] = {}  # open negotiations (lnd.funding)

    def __repr__(self) -> str:
        return f"LndBackend({self.name!r}, host={self.creds.host!r})"

    @classmethod
    def from_paths(
        cls, name: str, host: str, tls_cert: str | Path | None, macaroon: str | Path, timeout: float = 30.0
    ) -> LndBackend:
        cert = Path(tls_cert) if tls_cert else None
        return cls(name, LndCredentials(host, cert, Path(macaroon), timeout))

    # --- plumbing -----------------------------------------------------------------
    def _stubs(self) -> tuple[Any, Any, Any, Any]:
        from l2custody.backends.partial_import import submodule

        lightning_pb2, walletkit_pb2 = (
            submodule("lndgrpc", "compiled.lightning_pb2"),
            submodule("lndgrpc", "compiled.walletkit_pb2"),
        )
        lightning_pb2_grpc = submodule("lndgrpc", "compiled.lightning_pb2_grpc")
        walletkit_pb2_grpc = submodule("lndgrpc", "compiled.walletkit_pb2_grpc")

        with self._channel_lock:
            if self._channel is None:
                self._channel = open_channel(self.creds)
            ch = self._channel
        return lightning_pb2, lightning_pb2_grpc.LightningStub(ch), walletkit_pb2, walletkit_pb2_grpc.WalletKitStub(ch)

    @property
    def _t(self) -> float:
        return self.creds.timeout

    def translate(self, exc: Any, action: str) -> L2CustodyError:
        return translate_rpc_error(exc, node=self.name, host=self.creds.host, action=action, timeout=self._t)

    def close(self) -> None:
        for stream in list(self._streams.values()):
            stream.cancel()
        self._streams.clear()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # --- identity and peers ------------------------------------------------------------
    @rpc("get node info")
    def info(self) -> NodeInfo:
        ln, stub, _, _ = self._stubs()
        r = stub.GetInfo(ln.GetInfoRequest(), timeout=self._t)
        network = reported_network(r.chains[0].network) if r.chains else "unknown"
        return NodeInfo(
            pubkey=r.identity_pubkey,
            alias=r.alias,
            version=r.version,
            network=network,
            synced_to_chain=r.synced_to_chain,
            block_height=r.block_height,
            block_hash=r.block_hash,
            kind=self.kind,
            num_peers=r.num_peers,
            num_active_channels=r.num_active_channels,
            num_pending_channels=r.num_pending_channels,
            uris=tuple(r.uris),
        )

    @rpc("connect to the peer")
    def connect_peer(self, pubkey: str, host: str) -> None:
        ln, stub, _, _ = self._stubs()
        if self.is_connected(pubkey):
            return
        req = ln.ConnectPeerRequest(addr=ln.LightningAddress(pubkey=pubkey, host=host), timeout=int(self._t))
        try:
            stub.ConnectPeer(req, timeout=self._t + 5)
        except grpc.RpcError as exc:
            if "already connected" not in (exc.details() or ""):
                raise

    @rpc("list peers")
    def is_connected(self, pubkey: str) -> bool:
        ln, stub, _, _ = self._stubs()
        peers = stub.ListPeers(ln.ListPeersRequest(), timeout=self._t).peers
        return any(p.pub_key == pubkey for p in peers)

    # --- channels ---------------------------------------------------------------------
    def list_channels(self, *, include_closed: bool = True) -> list[ChannelInfo]:
        return self.start_list_channels(include_closed=include_closed)()

    @rpc("list channels")
    def start_list_channels(self, *, include_closed: bool = True) -> Callable[[], list[ChannelInfo]]:
        ln, stub, _, _ = self._stubs()

        lists: dict[str, Callable[[], list[ChannelInfo]]] = {
            "pending": lambda: conv.from_pending(
                self.name, stub.PendingChannels(ln.PendingChannelsRequest(), timeout=self._t)
            ),
            "open": lambda: [
                conv.from_channel(self.name, c)
                for c in stub.ListChannels(ln.ListChannelsRequest(), timeout=self._t).channels
            ],
            "closed": lambda: [
                conv.from_closed(self.name, c)
                for c in stub.ClosedChannels(ln.ClosedChannelsRequest(), timeout=self._t).channels
            ],
        }
        order = conv.READ_ORDER if include_closed else conv.READ_ORDER_OPEN_ONLY

        def read() -> list[ChannelInfo]:
            # One after another, never at once: see conv.latest_of for why.
            return conv.latest_of(lists[name]() for name in order)

        answer = _in_background(read, name=f"{self.name}: list channels")

        @rpc("list channels")
        def collect(backend: LndBackend) -> list[ChannelInfo]:
            return answer()

        # The node is read while the caller goes on (read_channels asks every node at once).
        return lambda: collect(self)

    def _find(self, channel_point: str, *, include_closed: bool = False) -> ChannelInfo:
        parse_channel_point(channel_point)
        for ch in self.list_channels(include_closed=include_closed):
            if ch.channel_point == channel_point:
                return ch
        raise ChannelNotFound(f"node {self.name!r} has no channel {channel_point}; see `l2custody channel list`")

    @rpc("close the channel")
    def close_channel(
        self,
        channel_point: str,
        *,
        delivery_address: str | None = None,
        fee_rate: float | None = None,
        force: bool = False,
    ) -> CloseResult:
        ln, stub, _, _ = self._stubs()
        txid, vout = parse_channel_point(channel_point)
        ch = self._find(channel_point)
        check_close_request(
            ch, channel_point, delivery_address=delivery_address, fee_rate=fee_rate, force=force, implementation="lnd"
        )
        req = ln.CloseChannelRequest(
            channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=vout),
            force=force,
            delivery_address=delivery_address or "",
        )
        if fee_rate is not None:
            req.sat_per_vbyte = max(1, math.ceil(fee_rate))
        call = stub.CloseChannel(req, timeout=NEGOTIATION_TIMEOUT)
        try:
            for update in call:
                which = update.WhichOneof("update")
                if which == "close_pending":
                    closing = conv.txid_from_bytes(update.close_pending.txid)
                    state = ChannelState.FORCE_CLOSING if force else ChannelState.CLOSING
                    to = None if force else delivery_address or ch.close_address
                    return CloseResult(channel_point, closing, state, to)
                if which == "chan_close":
                    closing = conv.txid_from_bytes(update.chan_close.closing_txid)
                    to = None if force else delivery_address or ch.close_address
                    return CloseResult(channel_point, closing, ChannelState.CLOSED, to)
        finally:
            call.cancel()  # lnd carries on with the close; we only wanted the txid
        raise NodeError(f"lnd ended the close of {channel_point} without a closing transaction; see its log")

    # --- funding --------------------------------------------------------------------------
    def open_start(self, request: OpenRequest) -> FundingIntent:
        try:
            return self._open_start(request, request.close_address)
        except UpfrontShutdownRefused:
            if not (request.close_address and request.allow_no_upfront_shutdown):
                raise
        return self._open_start(request, None)

    def _open_start(self, request: OpenRequest, close_address: str | None) -> FundingIntent:
        from embit.script import address_to_scriptpubkey

        ln, stub, _, _ = self._stubs()
        pending_id = os.urandom(32)
        req = ln.OpenChannelRequest(
            node_pubkey=bytes.fromhex(request.peer_pubkey),
            local_funding_amount=request.amount_sat,
            push_sat=request.push_sat,
            private=request.private,
            close_address=close_address or "",
            funding_shim=ln.FundingShim(
                psbt_shim=ln.PsbtShim(pending_chan_id=pending_id, no_publish=not request.node_publishes)
            ),
        )
        if request.commitment_type:
            if request.commitment_type not in _COMMITMENT_NAMES:
                raise UsageError(
                    f"unknown commitment type {request.commitment_type!r}: use one of {sorted(_COMMITMENT_NAMES)}"
                )
            req.commitment_type = _COMMITMENT_NAMES[request.commitment_type]
        what = f"open to {request.peer_pubkey[:16]}…"
        from l2custody.backends.lnd.funding import OpenStream

        stream = OpenStream(
            stub.OpenChannel(req), lambda e: self.translate(e, f"open a channel to {request.peer_pubkey}"), what
        )
        try:
            fund = stream.wait("psbt_fund", NEGOTIATION_TIMEOUT)
        except BaseException:
            stream.cancel()
            raise
        self._streams[pending_id.hex()] = stream
        return FundingIntent(
            node=self.name,
            kind=self.kind,
            peer_pubkey=request.peer_pubkey,
            intent_id=pending_id.hex(),
            funding_address=fund.funding_address,
            funding_script=address_to_scriptpubkey(fund.funding_address).data,
            amount_sat=fund.amount_sat,
            close_address=close_address,
            private=request.private,
            push_sat=request.push_sat,
        )

    def _check_reserve(self, intent: FundingIntent) -> None:
        if intent.private:
            return  # lnd only reserves for public anchor channels
        reserve = self.anchor_reserve(additional_public_channels=1)
        if not reserve.sufficient:
            raise InsufficientFunds(
                f"node {self.name!r} needs {reserve.required_sat} sat in its own wallet as the anchor "
                f"reserve for its public channels (it has {reserve.available_sat} sat); lnd refuses "
                f"the funding PSBT otherwise. Send at least {reserve.missing_sat} sat to the node wallet "
                "(`lncli newaddress p2tr`), or open the channel as private."
            )

    @rpc("verify the funding PSBT")
    def _verify(self, intent: FundingIntent, psbt: bytes, skip_finalize: bool) -> None:
        ln, stub, _, _ = self._stubs()
        msg = ln.FundingTransitionMsg(
            psbt_verify=ln.FundingPsbtVerify(
                funded_psbt=psbt, pending_chan_id=bytes.fromhex(intent.intent_id), skip_finalize=skip_finalize
            )
        )
        stub.FundingStateStep(msg, timeout=self._t)

    def open_secure(self, intent: FundingIntent, unsigned_psbt: bytes) -> str:
        from l2custody.backends.lnd.funding import funding_outpoint, to_psbt_v0

        psbt = to_psbt_v0(unsigned_psbt)
        expected = funding_outpoint(psbt, intent.funding_script, intent.amount_sat)
        self._check_reserve(intent)
        try:
            self._verify(intent, psbt, True)
        except InsufficientFunds:
            # lnd checks the reserve after it has already let the negotiation go on
            # (skip_finalize): undo whatever got that far, then report.
            self._undo_secured(intent, expected)
            raise
        return self._await_pending(intent, expected)

    def _undo_secured(self, intent: FundingIntent, expected: str) -> None:
        stream = self._streams.pop(intent.intent_id, None)
        try:
            if stream is not None:
                stream.wait("chan_pending", 10.0)
            else:
                self._poll_pending(expected, 10.0)
        except L2CustodyError:
            pass  # the negotiation did not get as far as a pending channel
        else:
            self.abandon_pending(expected)
        finally:
            if stream is not None:
                stream.cancel()
        try:
            self._shim_cancel(intent)
        except L2CustodyError:
            pass

    def open_finalize_interactive(self, intent: FundingIntent, signed_psbt: bytes) -> str:
        from l2custody.backends.lnd.funding import funding_outpoint, to_psbt_v0

        psbt = to_psbt_v0(signed_psbt)
        expected = funding_outpoint(psbt, intent.funding_script, intent.amount_sat)
        self._check_reserve(intent)
        self._verify(intent, psbt, False)
        self._finalize(intent, psbt)
        return self._await_pending(intent, expected)

    @rpc("finalize the funding PSBT")
    def _finalize(self, intent: FundingIntent, psbt: bytes) -> None:
        ln, stub, _, _ = self._stubs()
        msg = ln.FundingTransitionMsg(
            psbt_finalize=ln.FundingPsbtFinalize(signed_psbt=psbt, pending_chan_id=bytes.fromhex(intent.intent_id))
        )
        stub.FundingStateStep(msg, timeout=self._t)

    def _await_pending(self, intent: FundingIntent, expected: str) -> str:
        stream = self._streams.get(intent.intent_id)
        if stream is not None:
            point = stream.wait("chan_pending", NEGOTIATION_TIMEOUT)
        else:  # another process started the negotiation: watch the node instead
            point = self._poll_pending(expected, NEGOTIATION_TIMEOUT)
        if point != expected:
            raise NodeError(f"lnd reports channel {point}, the PSBT funds {expected}; do not broadcast, investigate")
        return point

    def _poll_pending(self, channel_point: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(c.channel_point == channel_point for c in self.list_channels(include_closed=False)):
                return channel_point
            time.sleep(0.5)
        raise NodeError(f"channel {channel_point} did not appear as pending on {self.name!r} within {timeout:g}s")

    def open_cancel(self, intent: FundingIntent) -> None:
        stream = self._streams.get(intent.intent_id)
        if stream is not None and stream.chan_pending:
            raise UsageError(
                f"the negotiation {intent.intent_id[:16]}… is already secured as pending channel "
                f"{stream.chan_pending}; cancelling is no longer possible: abandon the channel instead "
                "(nothing has been broadcast)"
            )
        try:
            self._shim_cancel(intent)
        except FundingNegotiationLost:
            pass  # lnd has forgotten it already: nothing left to cancel
        finally:
            self._streams.pop(intent.intent_id, None)
            if stream is not None:
                stream.cancel()

    @rpc("cancel the channel negotiation")
    def _shim_cancel(self, intent: FundingIntent) -> None:
        ln, stub, _, _ = self._stubs()
        msg = ln.FundingTransitionMsg(shim_cancel=ln.FundingShimCancel(pending_chan_id=bytes.fromhex(intent.intent_id)))
        stub.FundingStateStep(msg, timeout=self._t)

    @rpc("abandon the pending channel")
    def abandon_pending(self, channel_point: str) -> None:
        ln, stub, _, _ = self._stubs()
        ch = self._find(channel_point)
        check_abandon_request(ch, channel_point)
        txid, vout = parse_channel_point(channel_point)
        # PSBT-funded channels are not "shim funded" for pending_funding_shim_only
        # (lnd tells them apart by thaw height), hence the explicit override.
        req = ln.AbandonChannelRequest(
            channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=vout),
            pending_funding_shim_only=True,
            i_know_what_i_am_doing=True,
        )
        stub.AbandonChannel(req, timeout=self._t)
        for stream_id, stream in list(self._streams.items()):
            if stream.chan_pending == channel_point:
                stream.cancel()
                del self._streams[stream_id]

    def publish(self, raw_tx: bytes, *, label: str = "") -> str:
        from embit.transaction import Transaction

        _, _, wk, wkstub = self._stubs()
        txid = Transaction.parse(raw_tx).txid().hex()
        try:
            resp = wkstub.PublishTransaction(wk.Transaction(tx_hex=raw_tx, label=label), timeout=self._t)
        except grpc.RpcError as exc:
            if exc.code() in (
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.CANCELLED,
            ):
                raise BroadcastUnknown(
                    f"publishing {txid} through {self.name!r} ended with {exc.code().name}: it may or may "
                    "not have gone out. Check the chain (or the mempool) before trying again."
                ) from None
            raise BroadcastRejected(f"{self.name!r} refused to publish {txid}: {exc.details()}") from None
        if resp.publish_error:
            raise BroadcastRejected(f"{self.name!r} refused to publish {txid}: {resp.publish_error}")
        return txid

    # --- hot wallet --------------------------------------------------------------------
    @rpc("read the wallet balance")
    def onchain_balance(self) -> OnchainBalance:
        ln, stub, _, _ = self._stubs()
        r = stub.WalletBalance(ln.WalletBalanceRequest(), timeout=self._t)
        return OnchainBalance(
            r.confirmed_balance, r.unconfirmed_balance, r.locked_balance, r.reserved_balance_anchor_chan
        )

    @rpc("read the anchor reserve")
    def anchor_reserve(self, additional_public_channels: int = 0) -> AnchorReserve:
        _, _, wk, wkstub = self._stubs()
        req = wk.RequiredReserveRequest(additional_public_channels=additional_public_channels)
        required = wkstub.RequiredReserve(req, timeout=self._t).required_reserve
        # lnd counts unleased outputs of the default account, confirmed or not.
        utxos = wkstub.ListUnspent(
            wk.ListUnspentRequest(min_confs=0, max_confs=2**31 - 1, account="default"), timeout=self._t
        ).utxos
        return AnchorReserve(required, sum(u.amount_sat for u in utxos), additional_public_channels)

    @rpc("sweep the node wallet")
    def sweep_to(
        self, address: str, *, keep_sat: int | None = None, fee_rate: float | None = None, dry_run: bool = False
    ) -> SweepResult:
        from l2custody.backends.lnd.sweep import sweep

        return sweep(
            self.name,
            self._stubs(),
            self._t,
            lambda raw, label: self.publish(raw, label=label),
            address,
            keep_sat=keep_sat,
            fee_rate=fee_rate,
            dry_run=dry_run,
        )

    def accept_inbound(
        self,
        decide: Decide,
        stop: threading.Event,
        *,
        on_error: Callable[[InboundRequest, BaseException], None] | None = None,
    ) -> None:
        from l2custody.backends.lnd.acceptor import accept_channels

        ln, stub, _, _ = self._stubs()
        accept_channels(self.name, ln, stub, self.translate, decide, stop, on_error=on_error)

    @rpc("create a node wallet address")
    def new_address(self) -> str:
        ln, stub, _, _ = self._stubs()
        return stub.NewAddress(ln.NewAddressRequest(type=ln.WITNESS_PUBKEY_HASH), timeout=self._t).address

    @rpc("export the channel backup")
    def channel_backup(self) -> bytes:
        ln, stub, _, _ = self._stubs()
        snap = stub.ExportAllChannelBackups(ln.ChanBackupExportRequest(), timeout=self._t)
        return snap.multi_chan_backup.multi_chan_backup

    def subscribe_channel_events(self) -> Iterator[ChannelEvent]:
        ln, stub, _, _ = self._stubs()
        # Started here, not on the first next(): events from now on are delivered.
        call = stub.SubscribeChannelEvents(ln.ChannelEventSubscription())
        return self._events(call)

    def _events(self, call: Any) -> Iterator[ChannelEvent]:
        try:
            for update in call:
                event = conv.from_event(self.name, update)
                if event is not None:
                    yield event
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise self.translate(exc, "follow channel events") from None
        finally:
            call.cancel()

    # --- node check ------------------------------------------------------------------------
    @rpc("check the macaroon's permissions")
    def access_problems(self) -> list[str]:
        """Methods l2custody needs that the macaroon does not allow (empty: all fine)."""
        ln, stub, _, _ = self._stubs()
        _, macaroon = self.creds.load()
        perms = stub.ListPermissions(ln.ListPermissionsRequest(), timeout=self._t).method_permissions
        problems = []
        for method in REQUIRED_METHODS:
            if method not in perms:
                problems.append(f"{method}: not offered by this lnd (built without its sub-server?)")
                continue
            req = ln.CheckMacPermRequest(macaroon=macaroon, permissions=perms[method].permissions, fullMethod=method)
            try:
                stub.CheckMacaroonPermissions(req, timeout=self._t)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    if "permission denied" in (exc.details() or ""):
                        return [
                            "cannot check permissions: the macaroon lacks macaroon:read "
                            "(admin.macaroon has it); read-only calls work"
                        ]
                    raise
                needed = ", ".join(f"{p.entity}:{p.action}" for p in perms[method].permissions)
                problems.append(f"{method.rsplit('/', 1)[1]} needs {needed}")
        return problems

    def rpc_middleware(self, macaroon: Path | None = None) -> LndMiddlewareClient:
        from l2custody.backends.lnd.middleware_client import LndMiddlewareClient

        return LndMiddlewareClient(self, macaroon)
