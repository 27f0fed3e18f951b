"""Chain daemons on regtest: btcd (default, built here) and bitcoind (when installed).

Both listen on loopback ports reserved at start, answer JSON-RPC with a
per-network user and password, and mine to the faucet address. A port taken
between reservation and bind is retried on fresh ports.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

from regtest.daemon import Daemon
from regtest.errors import ChainRpcError, HarnessError, PortConflict
from regtest.rpc import JsonRpc
from regtest.util import reserve_port

START_ATTEMPTS = 3


class ChainNode:
    """A regtest chain daemon. Constructing it touches no network and starts nothing."""

    kind = "chain"
    network = "regtest"

    def __init__(
        self,
        directory: Path,
        binary: Path | None,
        mining_address: str,
        rpc_user: str = "l2c",
        rpc_password: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.name = self.kind
        self.dir = directory
        self.binary = binary
        self.mining_address = mining_address
        self.rpc_user = rpc_user
        self.rpc_password = rpc_password or secrets.token_hex(12)
        self.extra_args = tuple(extra_args)
        self.rpc_port = 0
        self.p2p_port = 0
        self.start_attempts = 0
        self.daemon: Daemon | None = None
        self._client: JsonRpc | None = None
        self._mine_lock = threading.Lock()

    # --- what callers use ------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        raise NotImplementedError

    @property
    def rpc_cert(self) -> Path | None:
        return None

    @property
    def log_path(self) -> Path:
        return self.dir / "daemon.log"

    def rpc(self, method: str, *params: Any) -> Any:
        """Call a JSON-RPC method and return its result (ChainRpcError on failure)."""
        if self._client is None:
            self._client = JsonRpc(self.rpc_url, self.rpc_user, self.rpc_password, self.rpc_cert)
        return self._client.call(method, *params)

    def rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several JSON-RPC calls in one round trip; results in order."""
        if self._client is None:
            self._client = JsonRpc(self.rpc_url, self.rpc_user, self.rpc_password, self.rpc_cert)
        return self._client.batch(calls)

    def mine(self, n: int) -> list[str]:
        """Mine ``n`` blocks paying the mining address; return their hashes."""
        raise NotImplementedError

    def height(self) -> int:
        return int(self.rpc("getblockcount"))

    # --- life cycle ------------------------------------------------------------
    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, detached: bool = False, timeout: float = 60.0) -> None:
        """Start the daemon and wait until its RPC answers; retry on a port conflict."""
        if self.binary is None:
            raise HarnessError(f"no {self.kind} binary to start")
        self.dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            self.start_attempts = attempt
            self.rpc_port, self.p2p_port = reserve_port(), reserve_port()
            self._client = None
            self.daemon = Daemon(self.kind, self.argv(), self.log_path, marker=str(self.dir))
            self.daemon.start(detached=detached)
            try:
                self.daemon.wait_ready(self._rpc_ready, timeout, "its RPC to answer")
                return
            except PortConflict:
                self.daemon.stop(5.0)
                if attempt == START_ATTEMPTS:
                    raise
                with open(self.log_path, "a") as fh:
                    fh.write(f"=== harness: a port was taken (attempt {attempt}); retrying on fresh ports\n")

    def _rpc_ready(self) -> bool:
        # A short timeout: whatever holds the port may accept and never answer
        # (the conflict we retry on), and the daemon's death must stay noticed.
        probe = JsonRpc(self.rpc_url, self.rpc_user, self.rpc_password, self.rpc_cert, timeout=3)
        try:
            probe.call("getblockchaininfo")
            return True
        except (ChainRpcError, OSError):  # OSError: btcd has not written rpc.cert yet
            return False

    def stop(self, timeout: float = 30.0) -> str | None:
        """Stop the daemon; return an error text instead of raising."""
        return self.daemon.stop(timeout) if self.daemon else None

    def alive(self) -> bool:
        return self.daemon is not None and self.daemon.alive()

    # --- state file ------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dir": str(self.dir),
            "binary": str(self.binary),
            "mining_address": self.mining_address,
            "rpc_url": self.rpc_url,
            "rpc_port": self.rpc_port,
            "p2p_port": self.p2p_port,
            "rpc_user": self.rpc_user,
            "rpc_password": self.rpc_password,
            "rpc_cert": str(self.rpc_cert) if self.rpc_cert else None,
            "pid": self.daemon.pid if self.daemon else None,
        }

    @staticmethod
    def from_state(state: dict[str, Any]) -> ChainNode:
        """Re-attach to a chain daemon started by another process."""
        cls = {"btcd": BtcdNode, "bitcoind": BitcoindNode}[state["kind"]]
        node = cls(
            Path(state["dir"]), Path(state["binary"]), state["mining_address"], state["rpc_user"], state["rpc_password"]
        )
        node.rpc_port, node.p2p_port = state["rpc_port"], state["p2p_port"]
        if state.get("pid"):
            node.daemon = Daemon.attach(node.kind, state["pid"], node.log_path, str(node.dir))
        return node


class BtcdNode(ChainNode):
    """btcd on regtest: TLS RPC with its self-made certificate (valid for 127.0.0.1)."""

    kind = "btcd"

    @property
    def rpc_url(self) -> str:
        return f"https://127.0.0.1:{self.rpc_port}"

    @property
    def rpc_cert(self) -> Path:
        return self.dir / "rpc.cert"

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            "--regtest",
            f"--datadir={self.dir / 'data'}",
            f"--logdir={self.dir / 'logs'}",
            f"--rpccert={self.rpc_cert}",
            f"--rpckey={self.dir / 'rpc.key'}",
            f"--rpclisten=127.0.0.1:{self.rpc_port}",
            f"--listen=127.0.0.1:{self.p2p_port}",
            f"--rpcuser={self.rpc_user}",
            f"--rpcpass={self.rpc_password}",
            f"--miningaddr={self.mining_address}",
            # lnd's chain clients hold several websockets each, and survive restarts as stale
            # ones for a while: the defaults (25 websockets, 10 clients) are too small.
            "--rpcmaxwebsockets=200",
            "--rpcmaxclients=200",
            "--txindex",
            "--rejectnonstd",
            "--nodnsseed",
            "--debuglevel=info",
            *self.extra_args,
        ]

    def mine(self, n: int) -> list[str]:
        # btcd refuses a second `generate` while one runs; keep ours in line.
        with self._mine_lock:
            return list(self.rpc("generate", n))


class BitcoindNode(ChainNode):
    """bitcoind on regtest (needed by Core Lightning); plain HTTP RPC on loopback."""

    kind = "bitcoind"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            "-regtest",
            f"-datadir={self.dir}",
            "-server=1",
            f"-rpcport={self.rpc_port}",
            f"-port={self.p2p_port}",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            "-bind=127.0.0.1",
            "-listenonion=0",
            "-dnsseed=0",
            "-discover=0",
            f"-rpcuser={self.rpc_user}",
            f"-rpcpassword={self.rpc_password}",
            "-txindex=1",
            "-printtoconsole=1",
            *self.extra_args,
        ]

    def mine(self, n: int) -> list[str]:
        with self._mine_lock:
            return list(self.rpc("generatetoaddress", n, self.mining_address))
