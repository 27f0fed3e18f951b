"""A stand-in lnd gRPC server for unit tests of the transport and error translation.

It is a real gRPC server with real TLS (a self-signed certificate made here),
so the client side (certificate checks, macaroon metadata, deadlines, status
codes) runs for real. What it answers is scripted: the error texts are the
ones lnd 0.20.1 sends, recorded from a real node (see
tests/integration/test_lnd_backend.py for the same failures on real lnd).
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lndgrpc.compiled import lightning_pb2 as ln

# Texts lnd 0.20.1-beta sent for each failure (recorded on regtest).
LND_MESSAGES = {
    "foreign macaroon": "verification failed: signature mismatch after caveat verification",
    "expired macaroon": 'caveat "time-before 2026-11-21T10:59:04.804094716Z" not satisfied: macaroon has expired',
    "garbage macaroon": "cannot determine data format of binary-encoded macaroon",
    "read-only macaroon": "permission denied",
    "no funding intent": "no funding intent found for pendingChannelID(93282132e7d36ba412c98cc1cb4ed3f497b8afe6c52ccc80e8767c2e1565db35)",
    "reserve": "reserved wallet balance invalidated: transaction would leave insufficient funds for fee "
    "bumping anchor channel closings (see debug log for details)",
    "upfront mismatch": "cannot close channel 626fee109850449849f86be45af6c11ba25f9e87c1e0fc66c9ffd05775920d97:0: "
    "shutdown script does not match upfront shutdown script",
    "no upfront support": "peer does not support option upfront shutdown script",
    "pending limit": "remote canceled funding, possibly timed out: received funding error from 0340f569: "
    "chan_id=320dc705, err=Number of pending channels exceed maximum",
}


def make_cert(common_name: str = "lnd") -> tuple[bytes, bytes]:
    """A self-signed certificate for 127.0.0.1 like lnd's: (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class Script:
    """What the server does on GetInfo: fail with ``error`` or answer ``info``."""

    error: tuple[grpc.StatusCode, str] | None = None
    delay: float = 0.0
    info: Any = None
    seen_macaroons: list[str] = field(default_factory=list)
    # OpenChannel: one entry per call, either an error text or a psbt_fund address
    opens: list[str] = field(default_factory=list)
    seen_opens: list[Any] = field(default_factory=list)


@contextmanager
def fake_lnd(script: Script, cert: bytes, key: bytes) -> Iterator[int]:
    """Serve ``/lnrpc.Lightning/GetInfo`` over TLS on 127.0.0.1; yields the port."""

    def get_info(request: Any, context: grpc.ServicerContext) -> Any:
        metadata = dict(context.invocation_metadata())
        script.seen_macaroons.append(metadata.get("macaroon", ""))
        if script.delay:
            time.sleep(script.delay)
        if script.error:
            context.abort(*script.error)
        return script.info or ln.GetInfoResponse(identity_pubkey="02" + "11" * 32, version="0.20.1-beta")

    handler: Callable[..., Any] = grpc.unary_unary_rpc_method_handler(
        get_info,
        request_deserializer=ln.GetInfoRequest.FromString,
        response_serializer=ln.GetInfoResponse.SerializeToString,
    )

    def open_channel(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        script.seen_opens.append(request)
        answer = script.opens.pop(0)
        if not answer.startswith("bcrt1"):
            context.abort(grpc.StatusCode.UNKNOWN, answer)
        fund = ln.ReadyForPsbtFunding(funding_address=answer, funding_amount=request.local_funding_amount)
        yield ln.OpenStatusUpdate(psbt_fund=fund, pending_chan_id=request.funding_shim.psbt_shim.pending_chan_id)
        while context.is_active():  # lnd keeps the stream open until the channel is pending
            time.sleep(0.05)

    opener = grpc.unary_stream_rpc_method_handler(
        open_channel,
        request_deserializer=ln.OpenChannelRequest.FromString,
        response_serializer=ln.OpenStatusUpdate.SerializeToString,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    methods = {"GetInfo": handler, "OpenChannel": opener}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("lnrpc.Lightning", methods),))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)
