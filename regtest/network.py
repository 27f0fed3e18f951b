"""A regtest network: one chain daemon, the faucet, N lnd and M Core Lightning nodes.

``Network.start`` brings it up in a directory of its own (one sub-directory
per daemon, ``state.json`` describing how to reach everything) and
``Network.attach`` finds it again from another process, which is how
``python -m regtest up`` / ``down`` / ``mine`` / ``fund`` share one network.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Union

import grpc

from regtest import binaries
from regtest.chain import BitcoindNode, BtcdNode, ChainNode
from regtest.cln import ClnNode
from regtest.errors import HarnessError, MissingBinary, NetworkRunning, NoNetwork
from regtest.faucet import Faucet
from regtest.lnd import RPC_TIMEOUT, LndNode
from regtest.util import wait_for

Node = Union[LndNode, ClnNode]
STATE_FILE = "state.json"
# btcd's regtest activates segwit (and taproot) by BIP9 signalling: started at
# 144, locked in at 288, active at 432. bitcoind's regtest has them from genesis
# and only needs coinbases past the 100-block maturity.
BOOTSTRAP_BLOCKS = {"btcd": 432, "bitcoind": 110}


def _missing(names: list[str]) -> list[str]:
    return [binaries.missing_reason(n) for n in names if binaries.find_binary(n) is None]


def cln_unavailable() -> str | None:
    """Why Core Lightning nodes cannot run here (naming each missing binary), or None."""
    missing = _missing(["lightningd", "bitcoind", "bitcoin-cli"])
    if not missing:
        return None
    return "Core Lightning nodes need lightningd, bitcoind and bitcoin-cli; missing: " + ", ".join(missing)


class Network:
    """A running regtest network. Use ``Network.start`` or ``Network.attach``."""

    def __init__(self, workdir: Path, chain: ChainNode, faucet: Faucet, detached: bool = False) -> None:
        self.workdir = workdir
        self.chain = chain
        self.faucet = faucet
        self.detached = detached
        self.lnd: list[LndNode] = []
        self.cln: list[ClnNode] = []

    # --- bringing it up ----------------------------------------------------------
    @classmethod
    def start(
        cls,
        workdir: Path,
        lnd: int = 2,
        cln: int = 0,
        chain: str | None = None,
        *,
        detached: bool = False,
        lnd_args: tuple[str, ...] = (),
    ) -> Network:
        """Start a chain daemon (btcd unless CLN nodes or ``chain="bitcoind"`` are asked
        for), mine until coins are spendable, then start the Lightning nodes.

        ``detached`` lets the daemons outlive this process (``python -m regtest up``).
        Raises NetworkRunning if ``workdir`` already holds a live network,
        MissingBinary / BuildError when a daemon cannot be had, DaemonStartError
        (with the daemon's log tail) when one dies or never gets ready. Whatever
        was started before a failure is stopped again.
        """
        workdir = Path(workdir).resolve()
        kind = chain or ("bitcoind" if cln else "btcd")
        if kind not in BOOTSTRAP_BLOCKS:
            raise HarnessError(f"unknown chain {kind!r}: use btcd or bitcoind")
        if cln and kind != "bitcoind":
            raise HarnessError("Core Lightning nodes need bitcoind as the chain (chain='bitcoind')")
        if cln:
            reason = cln_unavailable()
            if reason:
                raise MissingBinary(reason)
        if kind == "bitcoind" and _missing(["bitcoind"]):
            raise MissingBinary(f"chain='bitcoind' needs {binaries.missing_reason('bitcoind')}")
        _clear_stale(workdir)
        chain_bin = binaries.ensure(kind)
        lnd_bin = binaries.ensure("lnd") if lnd else None

        workdir.mkdir(parents=True, exist_ok=True)
        faucet = Faucet.load_or_create(workdir / "faucet.key")
        node_cls = BtcdNode if kind == "btcd" else BitcoindNode
        net = cls(workdir, node_cls(workdir / kind, chain_bin, faucet.address), faucet, detached)
        try:
            net.write_state()
            net.chain.start(detached=detached)
            net.write_state()
            net.chain.mine(BOOTSTRAP_BLOCKS[kind])
            for i in range(lnd):
                assert lnd_bin is not None
                net.lnd.append(LndNode(f"lnd-{i}", workdir / f"lnd-{i}", lnd_bin, net.chain, tuple(lnd_args)))
            for node in net.lnd:  # boot in parallel, then wait for each
                node.launch(detached)
            net.write_state()
            for node in net.lnd:
                node.wait_ready(detached)
            for _ in range(cln):
                net.add_cln()
            net.write_state()
        except BaseException:
            net.stop(raise_errors=False)
            raise
        return net

    def add_lnd(self, extra_args: tuple[str, ...] = (), name: str | None = None) -> LndNode:
        """Start one more lnd node on this network and return it once it is synced."""
        name = name or f"lnd-{len(self.lnd)}"
        node = LndNode(name, self.workdir / name, binaries.ensure("lnd"), self.chain, tuple(extra_args))
        self.lnd.append(node)
        try:
            node.start(self.detached)
        except BaseException:
            # The error is the caller's; the dead node must not be reported again at stop().
            self.lnd.remove(node)
            node.stop()
            raise
        finally:
            self.write_state()
        return node

    def add_cln(self, extra_args: tuple[str, ...] = (), name: str | None = None) -> ClnNode:
        """Start one more Core Lightning node (needs bitcoind as the chain)."""
        reason = cln_unavailable()
        if reason:
            raise MissingBinary(reason)
        name = name or f"cln-{len(self.cln)}"
        node = ClnNode(
            name,
            self.workdir / name,
            binaries.ensure("lightningd"),
            self.chain,
            binaries.ensure("bitcoin-cli"),
            tuple(extra_args),
        )
        self.cln.append(node)
        try:
            node.start(self.detached)
        except BaseException:
            self.cln.remove(node)
            node.stop()
            raise
        finally:
            self.write_state()
        return node

    @property
    def nodes(self) -> list[Node]:
        return [*self.lnd, *self.cln]

    # --- the chain -------------------------------------------------------------
    def mine(self, n: int = 1, sync: bool = True) -> list[str]:
        """Mine ``n`` blocks to the faucet; return their hashes.

        With ``sync`` (the default) it returns once every Lightning node has
        processed the new tip.
        """
        if n < 1:
            raise HarnessError(f"cannot mine {n} blocks: give a positive number")
        hashes = self.chain.mine(n)
        if sync:
            self.sync_all()
        return hashes

    def sync_all(self, timeout: float = 60.0) -> None:
        """Wait until every Lightning node reports the chain tip as processed."""
        tip = self.chain.height()

        def lagging() -> list[str]:
            # A node a test has stopped on purpose is not waited for.
            return [n.name for n in self.nodes if n.alive() and n.block_height() < tip]

        wait_for(
            lambda: not lagging(),
            timeout,
            what=f"nodes to reach block {tip} (lagging: {', '.join(lagging()) or 'none'})",
        )

    def invalidate_block(self, block_hash: str) -> None:
        """Mark a block invalid on the chain daemon: the tip falls back to its parent.

        Mining afterwards builds a competing branch (a reorg for everyone
        following the chain); ``reconsider_block`` makes the old branch valid
        again, and the daemon switches back if it is the longer one.
        """
        self.chain.rpc("invalidateblock", block_hash)

    def reconsider_block(self, block_hash: str) -> None:
        """Undo ``invalidate_block``: the block and its descendants become valid again."""
        self.chain.rpc("reconsiderblock", block_hash)

    def fund_address(self, address: str, sats: int) -> str:
        """Pay ``sats`` to ``address`` from faucet coins; return the txid (not mined)."""
        return self.faucet.pay(self.chain, [(address, sats)])

    def fund_addresses(self, outputs: list[tuple[str, int]]) -> str:
        """Pay several (address, sats) in one transaction; return the txid (not mined)."""
        return self.faucet.pay(self.chain, outputs)

    # --- Lightning nodes -----------------------------------------------------------
    def fund_node(self, node: Node, sats: int, utxos: int = 1, confirm: bool = True) -> str:
        """Send ``sats`` to the node's wallet, split over ``utxos`` fresh addresses.

        With ``confirm`` a block is mined and the call returns once the node
        counts the coins as confirmed. Returns the funding txid.
        """
        if utxos < 1 or sats // utxos < 1000:
            raise HarnessError(f"cannot split {sats} sat into {utxos} outputs of at least 1000 sat")
        before = confirmed_balance(node) if confirm else 0
        share = sats // utxos
        outputs = [(node.new_address(), share) for _ in range(utxos)]
        txid = self.fund_addresses(outputs)
        if confirm:
            self.mine(1)
            wait_for(
                lambda: confirmed_balance(node) >= before + share * utxos,
                60,
                what=f"{node.name} to see {share * utxos} sat confirmed",
            )
        return txid

    def connect(self, a: Node, b: Node, timeout: float = 30.0) -> None:
        """Connect ``a`` to ``b`` as peers and wait until both see each other."""
        if isinstance(a, LndNode):
            from lndgrpc.compiled import lightning_pb2 as ln

            try:
                a.ln.ConnectPeer(
                    ln.ConnectPeerRequest(addr=ln.LightningAddress(pubkey=b.pubkey, host=b.p2p_host)),
                    timeout=RPC_TIMEOUT,
                )
            except grpc.RpcError as exc:
                if "already connected" not in (exc.details() or ""):
                    raise HarnessError(f"{a.name} could not connect to {b.name}: {exc.details()}") from exc
        else:
            a.rpc.connect(b.pubkey, "127.0.0.1", b.p2p_port)
        wait_for(
            lambda: is_peer(a, b) and is_peer(b, a), timeout, what=f"{a.name} and {b.name} to see each other as peers"
        )

    # --- tearing down ---------------------------------------------------------------
    def stop(self, raise_errors: bool = True) -> list[str]:
        """Stop every daemon (Lightning nodes first), collecting every problem.

        Raises HarnessError listing all of them when ``raise_errors``;
        otherwise returns them. The directories stay: the caller decides.
        """
        errors: list[str] = []
        daemons: list[Node | ChainNode] = [*self.cln, *self.lnd, self.chain]
        for node in daemons:
            try:
                error = node.stop()
            except Exception as exc:  # keep going: every daemon must be stopped
                error = f"{node.name}: {exc}"
            if error:
                errors.append(error)
        state = self.workdir / STATE_FILE
        if state.exists():
            state.unlink()
        if errors and raise_errors:
            raise HarnessError("stopping the regtest network reported problems:\n- " + "\n- ".join(errors))
        return errors

    def running(self) -> bool:
        return self.chain.alive()

    # --- state file -------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """How to reach everything (what ``python -m regtest up --json`` prints)."""
        return {
            "workdir": str(self.workdir),
            "faucet": {"address": self.faucet.address, "key_file": str(self.workdir / "faucet.key")},
            "chain": self.chain.to_state(),
            "lnd": [n.to_state() for n in self.lnd],
            "cln": [n.to_state() for n in self.cln],
        }

    def write_state(self) -> None:
        state = {"version": 1, "detached": self.detached, "written": time.time(), **self.describe()}
        path = self.workdir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, path)

    @classmethod
    def attach(cls, workdir: Path) -> Network:
        """The network whose ``state.json`` is in ``workdir`` (NoNetwork if there is none)."""
        workdir = Path(workdir).resolve()
        path = workdir / STATE_FILE
        if not path.exists():
            raise NoNetwork(f"no regtest network in {workdir}: start one with `python -m regtest up`")
        state = json.loads(path.read_text())
        chain = ChainNode.from_state(state["chain"])
        net = cls(workdir, chain, Faucet.load_or_create(workdir / "faucet.key"), detached=state.get("detached", True))
        net.lnd = [LndNode.from_state(s, chain) for s in state.get("lnd", [])]
        net.cln = [ClnNode.from_state(s, chain) for s in state.get("cln", [])]
        return net


def _clear_stale(workdir: Path) -> None:
    """Refuse a live network in ``workdir``; remove the remains of a dead one."""
    if not (workdir / STATE_FILE).exists():
        # A run that failed or was stopped leaves its directories for
        # inspection; a new network must not inherit their wallets and chain.
        if workdir.is_dir():
            for sub in workdir.iterdir():
                if sub.name.split("-")[0] in ("btcd", "bitcoind", "lnd", "cln") and (sub / "daemon.log").exists():
                    shutil.rmtree(sub, ignore_errors=True)
            (workdir / "faucet.key").unlink(missing_ok=True)
        return
    old = Network.attach(workdir)
    live = [n.name for n in [old.chain, *old.nodes] if n.alive()]
    if live:
        raise NetworkRunning(
            f"a regtest network is already running in {workdir} ({', '.join(live)} alive); "
            "use it, or stop it first with `python -m regtest down`"
        )
    for node in [old.chain, *old.nodes]:
        shutil.rmtree(node.dir, ignore_errors=True)
    for name in (STATE_FILE, "faucet.key"):
        (workdir / name).unlink(missing_ok=True)


def confirmed_balance(node: Node) -> int:
    """Confirmed on-chain balance of a node's wallet, in sats."""
    if isinstance(node, LndNode):
        return node.confirmed_balance()
    outputs = node.rpc.listfunds()["outputs"]
    return sum(int(o["amount_msat"]) // 1000 for o in outputs if o.get("status") == "confirmed")


def is_peer(a: Node, b: Node) -> bool:
    """True when ``a`` lists ``b`` as a connected peer."""
    if isinstance(a, LndNode):
        from lndgrpc.compiled import lightning_pb2 as ln

        peers = a.ln.ListPeers(ln.ListPeersRequest(), timeout=RPC_TIMEOUT).peers
        return any(p.pub_key == b.pubkey for p in peers)
    peers = a.rpc.listpeers(b.pubkey)["peers"]
    return bool(peers) and bool(peers[0].get("connected"))
