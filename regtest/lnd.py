"""One lnd node on regtest, reached over gRPC with the lndgrpc stubs.

The harness talks to lnd directly through the generated stubs (``.ln``,
``.walletkit``, ``.router``, ``.invoices``): it is test infrastructure. The
product's own lnd access lives in ``l2custody/backends/lnd/backend.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from regtest.chain import BitcoindNode, ChainNode
from regtest.daemon import Daemon
from regtest.errors import HarnessError, PortConflict
from regtest.util import reserve_port

START_ATTEMPTS = 3
START_TIMEOUT = 120.0
# Timeout of each gRPC call the harness makes, so a hung lnd fails a test
# instead of hanging it.
RPC_TIMEOUT = 60.0


class LndNode:
    """An lnd process with its own directory and loopback ports.

    Constructing it starts nothing and touches no network; ``start()`` does.
    """

    kind = "lnd"

    def __init__(
        self, name: str, directory: Path, binary: Path, chain: ChainNode, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.dir = directory
        self.binary = binary
        self.chain = chain
        self.extra_args = tuple(extra_args)
        self.grpc_port = 0
        self.p2p_port = 0
        self.start_attempts = 0
        self.daemon: Daemon | None = None
        self._pubkey: str | None = None
        self._channel: grpc.Channel | None = None
        self._stubs: dict[str, Any] = {}

    # --- how to reach it -------------------------------------------------------
    @property
    def grpc_host(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def p2p_host(self) -> str:
        return f"127.0.0.1:{self.p2p_port}"

    @property
    def tls_cert(self) -> Path:
        return self.dir / "tls.cert"

    @property
    def admin_macaroon(self) -> Path:
        return self.dir / "data" / "chain" / "bitcoin" / "regtest" / "admin.macaroon"

    @property
    def log_path(self) -> Path:
        return self.dir / "daemon.log"

    @property
    def pubkey(self) -> str:
        """The node's identity key (hex), from GetInfo once and then remembered."""
        if self._pubkey is None:
            self._pubkey = self.info().identity_pubkey
        return self._pubkey

    def channel(self) -> grpc.Channel:
        """The authenticated gRPC channel (TLS with tls.cert, admin macaroon metadata)."""
        if self._channel is None:
            cert = self.tls_cert.read_bytes()
            macaroon = self.admin_macaroon.read_bytes().hex()

            def add_macaroon(_context: Any, callback: Any) -> None:
                callback([("macaroon", macaroon)], None)

            creds = grpc.composite_channel_credentials(
                grpc.ssl_channel_credentials(cert),
                grpc.metadata_call_credentials(add_macaroon),
            )
            self._channel = grpc.secure_channel(
                self.grpc_host, creds, options=[("grpc.max_receive_message_length", 64 << 20)]
            )
        return self._channel

    def _stub(self, module: str, cls: str) -> Any:
        if module not in self._stubs:
            import importlib

            mod = importlib.import_module(f"lndgrpc.compiled.{module}")
            self._stubs[module] = getattr(mod, cls)(self.channel())
        return self._stubs[module]

    @property
    def ln(self) -> Any:
        """``lightning_pb2_grpc.LightningStub``."""
        return self._stub("lightning_pb2_grpc", "LightningStub")

    @property
    def walletkit(self) -> Any:
        """``walletkit_pb2_grpc.WalletKitStub``."""
        return self._stub("walletkit_pb2_grpc", "WalletKitStub")

    @property
    def router(self) -> Any:
        """``router_pb2_grpc.RouterStub``."""
        return self._stub("router_pb2_grpc", "RouterStub")

    @property
    def invoices(self) -> Any:
        """``invoices_pb2_grpc.InvoicesStub``."""
        return self._stub("invoices_pb2_grpc", "InvoicesStub")

    # --- small conveniences the network and tests use --------------------------------
    def info(self, timeout: float = RPC_TIMEOUT) -> Any:
        from lndgrpc.compiled import lightning_pb2 as ln

        return self.ln.GetInfo(ln.GetInfoRequest(), timeout=timeout)

    def new_address(self) -> str:
        """A fresh P2WKH address of the node's wallet."""
        from lndgrpc.compiled import lightning_pb2 as ln

        return self.ln.NewAddress(ln.NewAddressRequest(type=ln.WITNESS_PUBKEY_HASH), timeout=RPC_TIMEOUT).address

    def confirmed_balance(self) -> int:
        from lndgrpc.compiled import lightning_pb2 as ln

        return int(self.ln.WalletBalance(ln.WalletBalanceRequest(), timeout=RPC_TIMEOUT).confirmed_balance)

    def block_height(self) -> int:
        """The height lnd has processed, or -1 while it cannot answer."""
        try:
            info = self.info(timeout=5)
        except grpc.RpcError:
            return -1
        return int(info.block_height) if info.synced_to_chain else -1

    # --- life cycle --------------------------------------------------------------
    def argv(self) -> list[str]:
        chain = self.chain
        if isinstance(chain, BitcoindNode):
            backend = [
                "--bitcoin.node=bitcoind",
                f"--bitcoind.rpchost=127.0.0.1:{chain.rpc_port}",
                f"--bitcoind.rpcuser={chain.rpc_user}",
                f"--bitcoind.rpcpass={chain.rpc_password}",
                "--bitcoind.rpcpolling",
                "--bitcoind.blockpollinginterval=100ms",
                "--bitcoind.txpollinginterval=100ms",
            ]
        else:
            backend = [
                "--bitcoin.node=btcd",
                f"--btcd.rpchost=127.0.0.1:{chain.rpc_port}",
                f"--btcd.rpcuser={chain.rpc_user}",
                f"--btcd.rpcpass={chain.rpc_password}",
                f"--btcd.rpccert={chain.rpc_cert}",
            ]
        return [
            str(self.binary),
            f"--lnddir={self.dir}",
            "--bitcoin.regtest",
            *backend,
            f"--rpclisten=127.0.0.1:{self.grpc_port}",
            f"--listen=127.0.0.1:{self.p2p_port}",
            "--norest",
            "--tlsextraip=127.0.0.1",
            "--noseedbackup",
            "--nobootstrap",
            f"--alias={self.name}",
            "--debuglevel=info",
            # Fast regtest: one confirmation opens a channel, gossip and batching
            # delays of milliseconds, several pending channels per peer (batches).
            "--bitcoin.defaultchanconfs=1",
            "--bitcoin.defaultremotedelay=4",
            "--trickledelay=50",
            "--gossip.sub-batch-delay=5ms",
            "--caches.rpc-graph-cache-duration=100ms",
            "--db.batch-commit-interval=10ms",
            "--maxpendingchannels=10",
            "--accept-keysend",
            # `node enforce` registers RPC middleware; with none registered (and none made
            # mandatory, which a test adds through extra_args) lnd behaves as without it.
            "--rpcmiddleware.enable",
            "--rpcmiddleware.intercepttimeout=10s",
            *self.extra_args,
        ]

    def start(self, detached: bool = False, timeout: float = START_TIMEOUT) -> None:
        """Start lnd and wait until its wallet is up and synced; retry on a port conflict."""
        self.start_attempts = 0
        self.launch(detached)
        self.wait_ready(detached, timeout)

    def launch(self, detached: bool = False, new_ports: bool = True) -> None:
        """Start the process without waiting (lets several nodes boot in parallel)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if new_ports or not self.grpc_port:
            self.grpc_port, self.p2p_port = reserve_port(), reserve_port()
        self.start_attempts += 1
        self._close_channel()
        self.daemon = Daemon(self.name, self.argv(), self.log_path, marker=str(self.dir))
        self.daemon.start(detached=detached)

    def wait_ready(self, detached: bool = False, timeout: float = START_TIMEOUT) -> None:
        """Wait for the macaroon, a GetInfo answer and chain sync; relaunch on a port conflict."""
        while True:
            assert self.daemon is not None
            try:
                self.daemon.wait_ready(self._ready, timeout, "wallet unlocked and synced to chain")
                self._pubkey = self.info().identity_pubkey
                return
            except PortConflict:
                self.daemon.stop(10.0)
                if self.start_attempts >= START_ATTEMPTS:
                    raise
                with open(self.log_path, "a") as fh:
                    fh.write("=== harness: a port was taken; retrying on fresh ports\n")
                self.launch(detached)

    def _ready(self) -> bool:
        # lnd creates the files, then writes them: an empty macaroon read now would be cached
        # in the gRPC channel and every later call refused ("empty macaroon data")
        if not (_has_data(self.admin_macaroon) and _has_data(self.tls_cert)):
            return False
        from lndgrpc.compiled import stateservice_pb2 as state

        try:
            # GetInfo answers before the server accepts peers; SERVER_ACTIVE is "fully started".
            # Short timeouts: a port held by someone else may accept and never answer.
            current = (
                self._stub("stateservice_pb2_grpc", "StateStub").GetState(state.GetStateRequest(), timeout=3).state
            )
            return current == state.SERVER_ACTIVE and bool(self.info(timeout=3).synced_to_chain)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNKNOWN) and "macaroon" in str(
                exc.details()
            ):
                self._close_channel()  # read the credentials again on the next try
            return False

    def stop(self, timeout: float = 30.0) -> str | None:
        """Stop lnd (SIGTERM, then SIGKILL); return an error text instead of raising."""
        self._close_channel()
        return self.daemon.stop(timeout) if self.daemon else None

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop and start again on the same ports, keeping wallet and channels."""
        error = self.stop()
        if error:
            raise HarnessError(f"restarting {self.name}: {error}")
        detached = self.daemon is not None and self.daemon.proc is None
        self.start_attempts = 0
        self.launch(detached, new_ports=False)
        self.wait_ready(detached, timeout)

    def alive(self) -> bool:
        return self.daemon is not None and self.daemon.alive()

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stubs = {}

    # --- state file ----------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "lnd",
            "name": self.name,
            "dir": str(self.dir),
            "binary": str(self.binary),
            "grpc_host": self.grpc_host,
            "grpc_port": self.grpc_port,
            "p2p_host": self.p2p_host,
            "p2p_port": self.p2p_port,
            "tls_cert": str(self.tls_cert),
            "admin_macaroon": str(self.admin_macaroon),
            "pubkey": self._pubkey,
            "extra_args": list(self.extra_args),
            "pid": self.daemon.pid if self.daemon else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], chain: ChainNode) -> LndNode:
        """Re-attach to an lnd started by another process."""
        node = cls(state["name"], Path(state["dir"]), Path(state["binary"]), chain, tuple(state.get("extra_args", ())))
        node.grpc_port, node.p2p_port = state["grpc_port"], state["p2p_port"]
        node._pubkey = state.get("pubkey")
        if state.get("pid"):
            node.daemon = Daemon.attach(node.name, state["pid"], node.log_path, str(node.dir))
        return node


def _has_data(path: Path) -> bool:
    """The file exists and is not empty (still being written when it is)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False
