"""Reaching an lnd node: credentials, lndconnect URIs, the gRPC channel, and the
one place where ``grpc.RpcError`` becomes an ``l2custody.errors`` exception.

Secrets (macaroon bytes) are read from paths when the first call needs them,
held in memory only, and never appear in messages, reprs or logs.
"""

from __future__ import annotations

import base64
import functools
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from l2custody.errors import (
    ConfigError,
    FundingNegotiationLost,
    InsufficientFunds,
    L2CustodyError,
    NodeAuthError,
    NodeError,
    NodeUnreachable,
    PeerRefused,
    UpfrontShutdownRefused,
    UsageError,
)

DEFAULT_LND_PORT = 10009
DEFAULT_TIMEOUT = 30.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


# --- lndconnect -------------------------------------------------------------------
@dataclass(frozen=True)
class LndConnectInfo:
    """What an ``lndconnect://`` URI carries. ``tls_cert_pem`` is None when the
    node uses a certificate from a public CA (the URI has no ``cert``)."""

    host: str
    tls_cert_pem: bytes | None = field(repr=False)
    macaroon: bytes = field(repr=False)


def _b64url(value: str, what: str) -> bytes:
    value = value.strip().rstrip("=")
    # urlsafe_b64decode silently drops characters outside its alphabet: an empty
    # macaroon would come out of a garbled one
    if not value or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value) or len(value) % 4 == 1:
        raise UsageError(f"lndconnect URI: the {what} is not base64url (letters, digits, - and _ only)")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def der_to_pem(der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def parse_lndconnect(uri: str) -> LndConnectInfo:
    """Parse ``lndconnect://host[:port]?cert=<b64url DER>&macaroon=<b64url>``.

    The port defaults to 10009; ``cert`` may be absent (CA-signed certificate);
    ``macaroon`` is required. Raises UsageError naming what is wrong; the
    message never repeats the macaroon.
    """
    try:
        parts = urlsplit(uri.strip())
    except ValueError as exc:  # a bracket left open around an IPv6 address
        raise UsageError(f"not a valid lndconnect URI ({exc}): expected lndconnect://HOST:PORT?cert=...") from None
    try:
        parsed_port = parts.port
    except ValueError:
        raise UsageError("lndconnect URI: the port is not a number from 1 to 65535") from None
    if parts.scheme.lower() != "lndconnect":
        raise UsageError(
            "not an lndconnect URI: expected lndconnect://HOST:PORT?cert=...&macaroon=... "
            "(lndconnect prints one; or use --host/--tls-cert/--macaroon)"
        )
    if not parts.hostname:
        raise UsageError("lndconnect URI has no host: expected lndconnect://HOST:PORT?...")
    port = parsed_port or DEFAULT_LND_PORT
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    query = parse_qs(parts.query, keep_blank_values=True)
    macaroons = query.get("macaroon", [])
    if not macaroons or not macaroons[0]:
        raise UsageError(
            "lndconnect URI has no macaroon: l2custody needs one to talk to lnd "
            "(lndconnect includes the admin macaroon unless told otherwise)"
        )
    macaroon = _b64url(macaroons[0], "macaroon")
    cert_pem = None
    certs = query.get("cert", [])
    if certs and certs[0]:
        cert_pem = der_to_pem(_b64url(certs[0], "TLS certificate"))
    return LndConnectInfo(host=f"{host}:{port}", tls_cert_pem=cert_pem, macaroon=macaroon)


# --- credentials ---------------------------------------------------------------------
@dataclass(frozen=True)
class LndCredentials:
    """Where to find lnd and how to prove who we are. Reading the files is
    deferred to ``load``; the macaroon never shows in ``repr``."""

    host: str
    tls_cert_path: Path | None
    macaroon_path: Path
    timeout: float = DEFAULT_TIMEOUT

    def load(self) -> tuple[bytes | None, bytes]:
        """Read ``(cert PEM or None, macaroon bytes)``; ConfigError names a bad file."""
        cert = None
        if self.tls_cert_path is not None:
            cert = _read(self.tls_cert_path, "TLS certificate")
            if b"-----BEGIN CERTIFICATE-----" not in cert:
                try:
                    cert = der_to_pem(cert)  # accept DER files too
                except Exception:  # pragma: no cover - b64encode does not fail
                    raise ConfigError(f"{self.tls_cert_path} is not a certificate") from None
        return cert, macaroon_bytes(_read(self.macaroon_path, "macaroon"), self.macaroon_path)


def macaroon_bytes(raw: bytes, path: Path | str) -> bytes:
    """An lnd macaroon file's bytes (binary, or hex text as ``lncli bakemacaroon`` prints):
    ConfigError for anything else, so that a wrong file fails here and not inside gRPC."""
    text = raw.strip()
    if text and all(c in b"0123456789abcdefABCDEF" for c in text):
        if len(text) % 2:
            raise ConfigError(f"macaroon file {path} holds an odd number of hex digits: it is not an lnd macaroon")
        raw = bytes.fromhex(text.decode())
    if len(raw) < 32 or raw[0] != 0x02:  # lnd writes version-2 binary macaroons
        raise ConfigError(
            f"macaroon file {path} does not hold an lnd macaroon (admin.macaroon under "
            "<lnddir>/data/chain/bitcoin/<network>/); check the path"
        )
    return raw


def _read(path: Path, what: str) -> bytes:
    from l2custody.user_paths import user_path, why

    try:
        return user_path(path, f"{what} file", ConfigError).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist; check the path") from None
    except PermissionError:
        raise ConfigError(
            f"cannot read {what} file {path}: permission denied; run l2custody as a user that may read it"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {why(exc)}") from None


def open_channel(creds: LndCredentials) -> Any:
    """A gRPC channel to lnd, TLS with the node's certificate and the macaroon on
    every call. Creating it does not connect; the first call does."""
    import grpc

    cert, macaroon = creds.load()
    mac_hex = macaroon.hex()

    def _metadata(_context: Any, callback: Any) -> None:
        callback((("macaroon", mac_hex),), None)

    ssl = grpc.ssl_channel_credentials(root_certificates=cert)
    auth = grpc.metadata_call_credentials(_metadata, name="macaroon")
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    return grpc.secure_channel(creds.host, grpc.composite_channel_credentials(ssl, auth), options)


# --- error translation ------------------------------------------------------------------
_AUTH_MARKERS = (
    "verification failed",
    "signature mismatch",
    "expected 1 macaroon",
    "cannot get macaroon",
    "unknown macaroon version",
    "invalid id",
    "root key with id",
    "macaroon locked to different ip",
    "incorrect macaroon ip",
    "encoded macaroon",
)
_STARTING_MARKERS = (
    "wallet locked",
    "wallet not created",
    "waiting to start",
    "still in the process of starting",
    "server is not active",
    "rpc server is not active",
)
_PEER_MARKERS = (
    "is not online",
    "not connected",
    "unable to locate",
    "received funding error",
    "remote canceled",
    "peer exiting",
    "disconnected",
    "unable to connect",
    "dial tcp",
    "connection refused",
    "i/o timeout",
    "remote rejected",
    "chan size",
    "channel too large",
    "funding rejected",
    "max pending channels",
    "pending channels exceed",
    "channels not supported",
    "zero-conf",
)


def translate_rpc_error(exc: Any, *, node: str, host: str, action: str, timeout: float) -> L2CustodyError:
    """Turn a ``grpc.RpcError`` from lnd into our error, keeping lnd's message."""
    import grpc

    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
    low = details.lower()
    where = f"lnd node {node!r} at {host}"
    if code == grpc.StatusCode.UNAVAILABLE:
        if "ssl" in low or "handshake" in low or "certificate" in low or "tls" in low:
            return NodeAuthError(
                f"TLS handshake with {where} failed: the certificate l2custody has is not the "
                "one the node presents (lnd regenerates tls.cert when it is deleted or its "
                "tlsextraip/tlsextradomain change), or this address is not lnd's gRPC port. Copy "
                f"the node's current tls.cert, check the port, and re-add the node. ({details})"
            )
        return NodeUnreachable(
            f"cannot reach {where} to {action}: {details}. Check that lnd is running, that "
            "its rpclisten covers this address and port, and any firewall or tunnel between."
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return NodeUnreachable(
            f"{where} did not answer {action} within {timeout:g}s; it may be busy or syncing. "
            "Try again, or raise the timeout."
        )
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) or any(
        m in low for m in _AUTH_MARKERS
    ):
        return NodeAuthError(
            f"{where} rejected the macaroon ({details}): it is not a macaroon of this node, or "
            "it was revoked or its root key rotated. Use the node's current admin.macaroon "
            "(or one baked for l2custody) and re-add the node."
        )
    if "permission denied" in low:
        return NodeAuthError(
            f"the macaroon for {where} does not allow {action} ({details}). Use admin.macaroon, "
            "or bake one with the permissions `l2custody node check` lists."
        )
    if "expired" in low and "macaroon" in low:
        return NodeAuthError(f"the macaroon for {where} has expired ({details}); bake a new one and re-add the node.")
    if any(m in low for m in _STARTING_MARKERS):
        return NodeUnreachable(
            f"{where} is not ready to {action}: {details}. Unlock the wallet "
            "(`lncli unlock`) or wait until lnd has started."
        )
    if "no funding intent found" in low or "no channel reservation found" in low:
        return FundingNegotiationLost(
            f"{where} no longer knows this channel negotiation ({details}): lnd restarted or the "
            "peer gave up (lnd peers wait about 10 minutes). Nothing was secured or broadcast; "
            "start the open again."
        )
    if "upfront shutdown" in low or "shutdown script does not match" in low:
        return UpfrontShutdownRefused(
            f"{where} refused to {action}: {details}. A channel opened with an upfront "
            "shutdown address can only be closed to that address; and a peer without "
            "option_upfront_shutdown_script cannot commit one."
        )
    if "reserved wallet balance" in low:
        return InsufficientFunds(
            f"{where} refused to {action}: {details}. lnd keeps a reserve in its own wallet "
            "to fee-bump anchor channels; fund the node wallet (see `l2custody node check`) "
            "or open the channel as private."
        )
    if any(m in low for m in _PEER_MARKERS):
        return PeerRefused(f"{where} could not {action}: {details}")
    return NodeError(f"{where} refused to {action}: {details}")


T = TypeVar("T")


def rpc(action: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Method decorator: run the body, translate any ``grpc.RpcError`` it raises.

    The instance must have ``name``, ``creds`` (LndCredentials).
    """

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
            import grpc

            try:
                return fn(self, *args, **kwargs)
            except grpc.RpcError as exc:
                raise self.translate(exc, action) from None

        return wrapper

    return deco
