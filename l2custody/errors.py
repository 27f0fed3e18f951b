"""The l2custody error hierarchy.

Every error carries a stable numeric ``code`` and a message that says what
happened and what to do. Foreign exceptions (grpc.RpcError, pyln RpcError,
sqlite3 errors, socket errors) are translated into these where they enter our
code; the CLI is the one place where an error becomes output (see
``cli/main.py``).
"""

from __future__ import annotations


class L2CustodyError(Exception):
    """Base class. ``code`` is stable across releases; scripts may rely on it."""

    code: int = 1
    kind: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": self.message, "code": self.code, "kind": self.kind}


# --- input and configuration (10-19) -------------------------------------
class UsageError(L2CustodyError):
    code, kind = 10, "usage"


class ConfigError(L2CustodyError):
    code, kind = 11, "config"


class AmountError(UsageError):
    code, kind = 12, "amount"


class NetworkMismatch(L2CustodyError):
    """An address, key, PSBT or node belongs to another network than the wallet."""

    code, kind = 13, "network-mismatch"


class StoreError(L2CustodyError):
    code, kind = 14, "store"


class StoreConflict(StoreError):
    """A write the store's rules refuse: a name or id that exists already, an audit
    entry changed."""

    code, kind = 15, "store-conflict"


class StoreDamaged(StoreError):
    """The store file is not a sound SQLite database (truncated, corrupt pages, data no
    l2custody wrote): stop, keep a copy, restore or recover."""

    code, kind = 16, "store-damaged"


# --- wallet and PSBTs (20-39) ----------------------------------------------
class DescriptorError(L2CustodyError):
    code, kind = 20, "descriptor"


class WalletNotFound(L2CustodyError):
    code, kind = 21, "wallet-not-found"


class InsufficientFunds(L2CustodyError):
    code, kind = 22, "insufficient-funds"


class PsbtError(L2CustodyError):
    """A PSBT that cannot be parsed or is not in the state the step needs."""

    code, kind = 30, "psbt"


class PsbtTampered(PsbtError):
    """A PSBT differs from what was verified, or carries foreign data."""

    code, kind = 31, "psbt-tampered"


class PolicyViolation(L2CustodyError):
    """A spend the operator's policy does not allow; nothing was signed."""

    code, kind = 32, "policy"


class SignerError(L2CustodyError):
    code, kind = 35, "signer"


class SignerUnavailable(SignerError):
    code, kind = 36, "signer-unavailable"


# --- chain (40-49) -----------------------------------------------------------
class ChainError(L2CustodyError):
    code, kind = 40, "chain"


class ChainUnreachable(ChainError):
    code, kind = 41, "chain-unreachable"


class BroadcastRejected(ChainError):
    """The chain source refused the transaction: nothing was broadcast."""

    code, kind = 42, "broadcast-rejected"


class BroadcastUnknown(ChainError):
    """We do not know whether the transaction went out: check the chain."""

    code, kind = 43, "broadcast-unknown"


# --- nodes (50-59) -----------------------------------------------------------
class NodeError(L2CustodyError):
    code, kind = 50, "node"


class NodeUnreachable(NodeError):
    code, kind = 51, "node-unreachable"


class NodeAuthError(NodeError):
    """Bad/expired macaroon, insufficient permissions, wrong TLS certificate."""

    code, kind = 52, "node-auth"


class NodeNotFound(NodeError):
    code, kind = 53, "node-not-found"


class NotSupported(NodeError):
    """The backend does not offer this operation."""

    code, kind = 54, "not-supported"


class PeerRefused(NodeError):
    """The peer (or the node on its behalf) refused the request."""

    code, kind = 55, "peer-refused"


class UpfrontShutdownRefused(PeerRefused):
    code, kind = 56, "upfront-shutdown-refused"


class FundingNegotiationLost(NodeError):
    """The node no longer knows a channel negotiation (it restarted, or the peer
    gave up): nothing was secured or broadcast; start the open again."""

    code, kind = 57, "funding-negotiation-lost"


# --- custody flows (60-79) ---------------------------------------------------
class SessionError(L2CustodyError):
    code, kind = 60, "session"


class SessionNotFound(SessionError):
    code, kind = 61, "session-not-found"


class DeadlinePassed(SessionError):
    """Too close to (or past) the block where peers forget the channel."""

    code, kind = 62, "deadline"


class ChannelNotFound(L2CustodyError):
    code, kind = 63, "channel-not-found"


class AlertDeliveryFailed(L2CustodyError):
    """An alert could not be handed to a sink (webhook, command); watch retries it."""

    code, kind = 64, "alert-delivery"


class CustodyViolation(L2CustodyError):
    """An invariant does not hold (foreign close address, foreign output...)."""

    code, kind = 70, "custody-violation"


class CustodyCheckFailed(CustodyViolation):
    """A custody check could not be completed (store, node or payload trouble), so
    the action it guards was refused: the checks fail closed."""

    code, kind = 71, "custody-check-failed"
