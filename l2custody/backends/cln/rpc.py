"""Reaching a Core Lightning node: its ``lightning-rpc`` unix socket through
pyln-client, and the one place where ``pyln.client.RpcError`` and socket
errors become ``l2custody.errors`` exceptions.

pyln-client opens a fresh socket per call and waits forever for the answer;
``ClnConnection`` gives every call a timeout (lightningd carries on with a
command whose caller went away, so a timeout never undoes anything: the
callers that move money treat it as "unknown, check"). pyln-client is only
imported when the first call is made.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from l2custody.errors import (
    BroadcastRejected,
    FundingNegotiationLost,
    InsufficientFunds,
    L2CustodyError,
    NodeError,
    NodeUnreachable,
    NotSupported,
    PeerRefused,
    PsbtError,
    UpfrontShutdownRefused,
    UsageError,
)

DEFAULT_TIMEOUT = 30.0
_log = logging.getLogger("l2custody.cln")

# lightningd's JSON-RPC error codes (common/jsonrpc_errors.h) that we tell apart.
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SHUTTING_DOWN = -5
FUND_MAX_EXCEEDED = 300
FUND_CANNOT_AFFORD = 301
FUND_OUTPUT_IS_DUST = 302
FUNDING_BROADCAST_FAIL = 303
FUNDING_STILL_SYNCING = 304
FUNDING_PEER_NOT_CONNECTED = 305
FUNDING_UNKNOWN_PEER = 306
FUNDING_NOTHING_TO_CANCEL = 307
FUNDING_CANCEL_NOT_SAFE = 308
FUNDING_PSBT_INVALID = 309
FUNDING_V2_NOT_SUPPORTED = 310
FUNDING_STATE_INVALID = 312
FUND_CANNOT_AFFORD_WITH_EMERGENCY = 313
CONNECT_ERRORS = (400, 401, 402)


class CallTimeout(NodeUnreachable):
    """lightningd did not answer within the timeout. The command may still be
    running inside lightningd; callers that move money must say "unknown"."""


@functools.lru_cache(maxsize=1)
def _client_class() -> Any:
    from l2custody.backends.partial_import import submodule

    lightning = submodule("pyln.client", "lightning")  # not pyln.client: its __init__ loads the plugin framework

    class _TimedRpc(lightning.LightningRpc):  # type: ignore[name-defined]
        """pyln's client with a socket timeout on every call."""

        def __init__(self, path: str, timeout: float) -> None:
            super().__init__(path, logger=_log)
            self.timeout = timeout

        def _writeobj(self, sock: Any, obj: Any) -> None:
            if sock.sock is not None:
                sock.sock.settimeout(self.timeout)
            super()._writeobj(sock, obj)

    return _TimedRpc


class ClnConnection:
    """``node``'s lightning-rpc socket at ``rpc_file``. Constructing it touches nothing."""

    def __init__(self, node: str, rpc_file: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.node = node
        self.rpc_file = Path(rpc_file)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ClnConnection({self.node!r}, {str(self.rpc_file)!r})"

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, action: str, timeout: float | None = None
    ) -> Any:
        """Call ``method`` with exactly ``params`` (named); return lightningd's result.

        Raises the translated error (see ``translate``); ``CallTimeout`` when
        no answer came within ``timeout`` (default: the connection's).
        """
        from l2custody.backends.partial_import import submodule

        RpcError = submodule("pyln.client", "lightning").RpcError

        wait = timeout or self.timeout
        client = _client_class()(str(self.rpc_file), wait)  # pyln opens a socket per call anyway
        try:
            return client.call(method, params or {})
        except RpcError as exc:
            raise translate(exc.error, node=self.node, method=method, action=action) from None
        except TimeoutError:
            raise CallTimeout(
                f"Core Lightning node {self.node!r} did not answer {method} ({action}) within "
                f"{wait:g}s; lightningd may still be working on it. Check with "
                "`l2custody channel list` / the node's log before trying again."
            ) from None
        except OSError as exc:
            raise socket_error(exc, node=self.node, rpc_file=self.rpc_file, action=action) from None


def socket_error(exc: OSError, *, node: str, rpc_file: Path, action: str) -> NodeUnreachable:
    """A failure to talk over the unix socket, with what to check."""
    where = f"Core Lightning node {node!r}"
    if isinstance(exc, FileNotFoundError):
        return NodeUnreachable(
            f"cannot {action}: {where}'s rpc file {rpc_file} does not exist. Is lightningd running? "
            "The socket is <lightning-dir>/<network>/lightning-rpc (e.g. ~/.lightning/bitcoin/"
            "lightning-rpc, or what lightningd's --rpc-file says); re-add the node if the path changed."
        )
    if isinstance(exc, PermissionError):
        return NodeUnreachable(
            f"cannot {action}: permission denied on {where}'s rpc file {rpc_file}. Run l2custody as "
            "the user that runs lightningd, or let this user in (lightningd's --rpc-file-mode, "
            "default 0600, and the directory's permissions)."
        )
    if isinstance(exc, ConnectionRefusedError):
        return NodeUnreachable(
            f"cannot {action}: nothing answers on {where}'s rpc file {rpc_file} (a stale socket: "
            "lightningd is not running). Start lightningd and try again."
        )
    if isinstance(exc, ConnectionError):
        return NodeUnreachable(
            f"{where} dropped the connection while asked to {action} ({exc.strerror or exc}); "
            "lightningd may have stopped. Check that it is running and try again."
        )
    return NodeUnreachable(
        f"cannot {action}: {where}'s rpc file {rpc_file} is not usable ({exc.strerror or exc}). "
        "Check that the path is lightningd's lightning-rpc socket and that lightningd is running."
    )


_UPFRONT_MARKERS = ("does not match previous shutdown script", "upfront")


def translate(error: Any, *, node: str, method: str, action: str) -> L2CustodyError:
    """lightningd's error object (``{"code", "message", "data"?}``, or pyln's
    string when the connection was lost) -> our error, keeping the node's words."""
    where = f"Core Lightning node {node!r}"
    if not isinstance(error, dict):
        return NodeUnreachable(
            f"{where} closed the connection while asked to {action} ({error}); lightningd may have "
            "stopped or restarted. Check that it is running, then look at the state before retrying."
        )
    code = error.get("code")
    message = str(error.get("message", "")).strip() or "no message"
    low = message.lower()
    said = f"{message} (code {code})"
    if code == METHOD_NOT_FOUND:
        return NotSupported(
            f"{where} has no `{method}` command (needed to {action}): the node is too old or the "
            "plugin providing it is disabled. See `l2custody node check`."
        )
    if code == SHUTTING_DOWN:
        return NodeUnreachable(f"{where} is shutting down; could not {action}. Try again once it is back.")
    if any(m in low for m in _UPFRONT_MARKERS):
        return UpfrontShutdownRefused(
            f"{where} refused to {action}: {said}. A channel opened with an upfront shutdown "
            "address can only be closed to that address: close it without a destination."
        )
    return _peer_error(code, low, said, where, method, action) or _funding_error(code, low, said, where, action)


def _peer_error(code: Any, low: str, said: str, where: str, method: str, action: str) -> L2CustodyError | None:
    """Errors about the peer and the connection to it, else None."""
    if code in (FUNDING_PEER_NOT_CONNECTED, FUNDING_UNKNOWN_PEER):
        if method in ("fundchannel_complete",):
            return FundingNegotiationLost(
                f"{where} could not {action}: {said}. A negotiation dies when the peer disconnects; "
                "nothing was secured or broadcast: open the channel again."
            )
        return PeerRefused(
            f"{where} could not {action}: {said}. Connect the node to the peer first "
            "(give PEER@HOST:PORT), and check the peer is online."
        )
    if "owning subdaemon openingd died" in low or "peer connection lost" in low:
        return PeerRefused(
            f"{where} lost the connection to the peer while asked to {action} ({said}); a peer that "
            "refuses something sends an error and disconnects. Nothing was secured: reconnect and try again."
        )
    if code in CONNECT_ERRORS:
        return PeerRefused(f"{where} could not {action}: {said}. Check the peer's address and that it is online.")
    return None


def _funding_error(code: Any, low: str, said: str, where: str, action: str) -> L2CustodyError:
    """Errors about funding, the wallet and the request itself; NodeError for the rest."""
    if code == FUNDING_NOTHING_TO_CANCEL or "no channel funding in progress" in low:
        return FundingNegotiationLost(
            f"{where} has no channel negotiation to {action} ({said}): lightningd restarted or the "
            "peer disconnected. Nothing was secured or broadcast; start the open again."
        )
    if code == FUNDING_CANCEL_NOT_SAFE:
        return NodeError(
            f"{where} refused to {action}: {said}. The funding transaction may be published "
            "already: do not abandon this channel; check the chain and `l2custody session status`."
        )
    if code == FUNDING_PSBT_INVALID:
        return PsbtError(f"{where} refused the funding PSBT: {said}. Rebuild the PSBT from the session.")
    if code in (FUND_CANNOT_AFFORD, FUND_CANNOT_AFFORD_WITH_EMERGENCY):
        return InsufficientFunds(
            f"{where} cannot {action}: {said}. Core Lightning keeps an emergency reserve "
            "(min-emergency-msat, 25000 sat by default) in its wallet while it has anchor channels."
        )
    if code in (FUND_MAX_EXCEEDED, FUND_OUTPUT_IS_DUST):
        return UsageError(f"{where} refused to {action}: {said}")
    if code == FUNDING_STILL_SYNCING:
        return NodeError(f"{where} is still syncing with the chain and cannot {action} yet; wait and retry.")
    if code in (FUNDING_V2_NOT_SUPPORTED, FUNDING_STATE_INVALID) and "dual" in low:
        return NotSupported(
            f"{where} cannot {action}: {said}. The peer negotiated dual funding, which l2custody's "
            "PSBT sessions do not drive; disable experimental-dual-fund on this node for custody opens."
        )
    if code == FUNDING_BROADCAST_FAIL or "error broadcasting" in low:
        return BroadcastRejected(f"{where} could not broadcast ({action}): {said}")
    if "already funding channel" in low or "have in-progress `open_channel`" in low:
        return UsageError(
            f"{where} is already negotiating a channel with this peer ({said}). Core Lightning allows "
            "one pending open per peer: put channels to the same peer in separate sessions, or finish "
            "or abort the other one first."
        )
    if code == INVALID_PARAMS:
        return UsageError(f"{where} rejected the request to {action}: {said}")
    return NodeError(f"{where} refused to {action}: {said}")
