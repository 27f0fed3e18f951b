"""One Core Lightning node on regtest (only where lightningd and bitcoind are installed).

CLN reaches the chain through its bcli plugin, which runs ``bitcoin-cli``
against bitcoind; btcd cannot serve it. The node is driven through its
JSON-RPC unix socket with pyln-client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regtest.chain import ChainNode
from regtest.daemon import Daemon
from regtest.errors import HarnessError, PortConflict
from regtest.util import reserve_port

START_ATTEMPTS = 3
START_TIMEOUT = 120.0


class ClnNode:
    """A lightningd process with its own lightning-dir. Constructing it starts nothing."""

    kind = "cln"

    def __init__(
        self,
        name: str,
        directory: Path,
        binary: Path,
        chain: ChainNode,
        bitcoin_cli: Path,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if chain.kind != "bitcoind":
            raise HarnessError(f"{name}: Core Lightning needs bitcoind as its chain, not {chain.kind}")
        self.name = name
        self.dir = directory
        self.binary = binary
        self.chain = chain
        self.bitcoin_cli = bitcoin_cli
        self.extra_args = tuple(extra_args)
        self.p2p_port = 0
        self.start_attempts = 0
        self.daemon: Daemon | None = None
        self._rpc: Any = None
        self._pubkey: str | None = None

    @property
    def p2p_host(self) -> str:
        return f"127.0.0.1:{self.p2p_port}"

    @property
    def rpc_file(self) -> Path:
        return self.dir / "regtest" / "lightning-rpc"

    @property
    def log_path(self) -> Path:
        return self.dir / "daemon.log"

    @property
    def rpc(self) -> Any:
        """A ``pyln.client.LightningRpc`` on the node's socket."""
        if self._rpc is None:
            from pyln.client import LightningRpc

            self._rpc = LightningRpc(str(self.rpc_file))
        return self._rpc

    @property
    def pubkey(self) -> str:
        if self._pubkey is None:
            self._pubkey = str(self.rpc.getinfo()["id"])
        return self._pubkey

    def new_address(self) -> str:
        return str(self.rpc.newaddr("bech32")["bech32"])

    def block_height(self) -> int:
        try:
            return int(self.rpc.getinfo()["blockheight"])
        except Exception:  # pyln raises RpcError or OSError while lightningd starts
            return -1

    def argv(self) -> list[str]:
        chain = self.chain
        return [
            str(self.binary),
            "--developer",
            "--network=regtest",
            f"--lightning-dir={self.dir}",
            f"--addr=127.0.0.1:{self.p2p_port}",
            f"--alias={self.name}",
            "--log-level=debug",
            "--log-file=-",
            "--bitcoin-rpcconnect=127.0.0.1",
            f"--bitcoin-rpcport={chain.rpc_port}",
            f"--bitcoin-rpcuser={chain.rpc_user}",
            f"--bitcoin-rpcpassword={chain.rpc_password}",
            # bitcoin-cli must not read a bitcoin.conf from $HOME
            f"--bitcoin-datadir={self.dir}",
            f"--bitcoin-cli={self.bitcoin_cli}",
            "--dev-bitcoind-poll=1",
            "--dev-fast-gossip",
            "--funding-confirms=1",
            # plugins that would open more (fixed) ports
            "--disable-plugin=cln-grpc",
            "--disable-plugin=clnrest",
            "--disable-plugin=wss-proxy",
            *self.extra_args,
        ]

    def start(self, detached: bool = False, timeout: float = START_TIMEOUT) -> None:
        """Start lightningd and wait until it answers getinfo at the chain tip."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            self.start_attempts = attempt
            self.p2p_port = reserve_port()
            self._rpc = None
            self.daemon = Daemon(self.name, self.argv(), self.log_path, marker=str(self.dir))
            self.daemon.start(detached=detached)
            try:
                self.daemon.wait_ready(
                    lambda: self.block_height() >= self.chain.height(),
                    timeout,
                    "getinfo at the chain tip",
                )
                self._pubkey = str(self.rpc.getinfo()["id"])
                return
            except PortConflict:
                self.daemon.stop(10.0)
                if attempt == START_ATTEMPTS:
                    raise

    def stop(self, timeout: float = 30.0) -> str | None:
        self._rpc = None
        return self.daemon.stop(timeout) if self.daemon else None

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop and start again (on a fresh port)."""
        error = self.stop()
        if error:
            raise HarnessError(f"restarting {self.name}: {error}")
        self.start(detached=self.daemon is not None and self.daemon.proc is None, timeout=timeout)

    def alive(self) -> bool:
        return self.daemon is not None and self.daemon.alive()

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "cln",
            "name": self.name,
            "dir": str(self.dir),
            "binary": str(self.binary),
            "bitcoin_cli": str(self.bitcoin_cli),
            "p2p_host": self.p2p_host,
            "p2p_port": self.p2p_port,
            "rpc_file": str(self.rpc_file),
            "pubkey": self._pubkey,
            "extra_args": list(self.extra_args),
            "pid": self.daemon.pid if self.daemon else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], chain: ChainNode) -> ClnNode:
        node = cls(
            state["name"],
            Path(state["dir"]),
            Path(state["binary"]),
            chain,
            Path(state["bitcoin_cli"]),
            tuple(state.get("extra_args", ())),
        )
        node.p2p_port = state["p2p_port"]
        node._pubkey = state.get("pubkey")
        if state.get("pid"):
            node.daemon = Daemon.attach(node.name, state["pid"], node.log_path, str(node.dir))
        return node
