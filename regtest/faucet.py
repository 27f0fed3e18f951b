"""The harness faucet: a key the chain mines to, whose coins fund addresses.

btcd has no wallet, so the harness holds one P2WPKH key (a WIF file in the
network directory), starts the chain daemon mining to its address, finds its
coins by reading raw blocks (``getblock <hash> 0``) and pays addresses with
transactions it signs itself (embit) and hands to ``sendrawtransaction``. The
same code works on bitcoind. Coinbase outputs are spent only once they are
100 blocks deep; outputs already spent by a transaction in the mempool are
skipped, so several payments can be made between two blocks.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from embit import compact
from embit.ec import PrivateKey
from embit.networks import NETWORKS
from embit.script import Script, address_to_scriptpubkey, p2pkh_from_p2wpkh, p2wpkh, witness_p2wpkh
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from regtest.errors import ChainRpcError, FaucetError

REGTEST = NETWORKS["regtest"]
COINBASE_MATURITY = 100
DUST_LIMIT = 546
_NULL_TXID = bytes(32)


class RpcCaller(Protocol):
    def rpc(self, method: str, *params: Any) -> Any: ...

    def rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]: ...


@dataclass(frozen=True)
class Coin:
    """An output paying the faucet."""

    txid: str
    vout: int
    value: int
    height: int
    coinbase: bool


def parse_block(raw: bytes) -> list[Transaction]:
    """The transactions of a serialized block (the 80-byte header is skipped)."""
    stream = io.BytesIO(raw)
    stream.read(80)
    count = compact.read_from(stream)
    return [Transaction.read_from(stream) for _ in range(count)]


def is_coinbase(tx: Transaction) -> bool:
    return len(tx.vin) == 1 and tx.vin[0].txid == _NULL_TXID and tx.vin[0].vout == 0xFFFFFFFF


def regtest_script(address: str) -> Script:
    """The scriptPubKey of a regtest address; FaucetError for any other network or garbage."""
    try:
        script = address_to_scriptpubkey(address)
        round_trip = script.address(REGTEST)
    except Exception as exc:  # embit raises several types for malformed input
        raise FaucetError(f"{address!r} is not a valid bitcoin address ({exc})") from exc
    if round_trip.lower() != address.lower():
        raise FaucetError(
            f"{address!r} is not a regtest address (regtest addresses start with bcrt1, m, n "
            "or 2); ask the node for an address on regtest"
        )
    return script


class Faucet:
    """A key whose coins the harness spends. Constructing it touches no network."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        self.script = p2wpkh(key.get_public_key())
        self.address = self.script.address(REGTEST)
        self._hashes: list[str] = []  # block hash by height, as scanned
        self._coins: dict[tuple[str, int], Coin] = {}

    @classmethod
    def load_or_create(cls, path: Path) -> Faucet:
        """Read the WIF key at ``path``, or create one there (mode 0600)."""
        if path.exists():
            return cls(PrivateKey.from_wif(path.read_text().strip()))
        key = PrivateKey(os.urandom(32))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.wif(REGTEST) + "\n")
        return cls(key)

    # --- following the chain ------------------------------------------------
    def scan(self, chain: RpcCaller) -> None:
        """Bring the coin set up to the chain tip; rescan from genesis after a reorg."""
        tip = int(chain.rpc("getblockcount"))
        if self._hashes:
            height = min(len(self._hashes) - 1, tip)
            if chain.rpc("getblockhash", height) != self._hashes[height]:
                self._hashes, self._coins = [], {}
        # Batches of 100: btcd closes the connection after each HTTP request, so
        # one round trip per block would cost a TLS handshake per block.
        for start in range(len(self._hashes), tip + 1, 100):
            heights = range(start, min(start + 100, tip + 1))
            hashes = [str(h) for h in chain.rpc_batch([("getblockhash", [h]) for h in heights])]
            blocks = chain.rpc_batch([("getblock", [h, 0]) for h in hashes])
            for height, block_hash, raw in zip(heights, hashes, blocks, strict=True):
                self._apply_block(bytes.fromhex(str(raw)), height)
                self._hashes.append(block_hash)

    def _apply_block(self, raw: bytes, height: int) -> None:
        for tx in parse_block(raw):
            coinbase = is_coinbase(tx)
            if not coinbase:
                for inp in tx.vin:
                    self._coins.pop((inp.txid.hex(), inp.vout), None)
            txid = tx.txid().hex()
            for vout, out in enumerate(tx.vout):
                if out.script_pubkey == self.script:
                    self._coins[(txid, vout)] = Coin(txid, vout, out.value, height, coinbase)

    def spendable(self, chain: RpcCaller) -> list[Coin]:
        """Mature, confirmed coins not already spent by a mempool transaction."""
        self.scan(chain)
        tip = len(self._hashes) - 1
        in_mempool: set[tuple[str, int]] = set()
        for txid in chain.rpc("getrawmempool") or []:
            try:
                raw = bytes.fromhex(str(chain.rpc("getrawtransaction", txid)))
            except ChainRpcError:
                continue  # mined or evicted since the listing
            for inp in Transaction.parse(raw).vin:
                in_mempool.add((inp.txid.hex(), inp.vout))
        return [
            coin
            for key, coin in self._coins.items()
            if key not in in_mempool and (tip - coin.height >= COINBASE_MATURITY if coin.coinbase else True)
        ]

    def balance(self, chain: RpcCaller) -> int:
        """Satoshis the faucet can spend right now."""
        return sum(c.value for c in self.spendable(chain))

    # --- paying -----------------------------------------------------------
    def build(self, coins: list[Coin], outputs: list[tuple[str, int]], fee_rate: float = 2.0) -> Transaction:
        """A signed transaction paying ``outputs`` (address, sats) from ``coins``, change to us.

        Pure: picks the largest coins first until amounts plus fee are covered.
        Raises FaucetError for a bad address, a dust amount, or too few coins.
        """
        if not outputs:
            raise FaucetError("nothing to pay: give at least one (address, sats)")
        vout = []
        for address, sats in outputs:
            script = regtest_script(address)
            if not isinstance(sats, int) or sats < DUST_LIMIT:
                raise FaucetError(
                    f"cannot send {sats!r} sat to {address}: amounts are whole satoshis of at least {DUST_LIMIT}"
                )
            vout.append(TransactionOutput(sats, script))
        target = sum(o.value for o in vout)
        out_vbytes = sum(9 + len(o.script_pubkey.data) for o in vout) + 31  # + change
        chosen: list[Coin] = []
        fee = 0
        for coin in sorted(coins, key=lambda c: c.value, reverse=True):
            chosen.append(coin)
            fee = math.ceil((11 + 68 * len(chosen) + out_vbytes) * fee_rate)
            if sum(c.value for c in chosen) >= target + fee:
                break
        else:
            have = sum(c.value for c in coins)
            raise FaucetError(
                f"the faucet has {have} sat in mature coins but {target + fee} sat are needed; "
                "mine more blocks (coinbase outputs mature after 100 blocks)"
            )
        change = sum(c.value for c in chosen) - target - fee
        if change >= DUST_LIMIT:
            vout.append(TransactionOutput(change, self.script))
        vin = [TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=0xFFFFFFFD) for c in chosen]
        tx = Transaction(version=2, vin=vin, vout=vout, locktime=0)
        script_code = p2pkh_from_p2wpkh(self.script)
        pub = self.key.get_public_key()
        for i, coin in enumerate(chosen):
            sig = self.key.sign(tx.sighash_segwit(i, script_code, coin.value))
            tx.vin[i].witness = witness_p2wpkh(sig, pub)
        return tx

    def pay(self, chain: RpcCaller, outputs: list[tuple[str, int]], fee_rate: float = 2.0) -> str:
        """Broadcast a payment of ``outputs`` (address, sats); return its txid (not mined)."""
        tx = self.build(self.spendable(chain), outputs, fee_rate)
        return str(chain.rpc("sendrawtransaction", tx.serialize().hex()))
