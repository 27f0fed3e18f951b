"""The block scanner: follows the chain for a wallet (every generation of it), resumably.

``Scanner.sync()`` reads raw blocks from a ChainSource (``getblockhash`` +
``getblock <hash> 0``, batched), parses each once with embit, and

* matches every output against the wallet's scripts (a dict lookup) within a
  gap window per branch (receive and change) that grows as addresses get used;
* matches every input against the wallet's known outpoints (spends);
* stores block hashes, so a reorg is found by comparing them with the chain:
  the scanner walks back to the fork point, rolls back what the orphaned
  blocks did (``Store.rollback_above``) and rescans;
* commits per batch of blocks (UTXOs, spends, addresses and block hashes in
  one SQLite transaction), so an interrupted scan resumes where it stopped.

With ``mempool=True`` it also looks at the node's mempool for unconfirmed
payments and spends, and forgets unconfirmed transactions that left it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from embit import compact
from embit.transaction import Transaction

from l2custody.chain.base import ChainSource
from l2custody.errors import ChainError
from l2custody.store import AddressRecord, Store, UtxoRecord

#: Block hashes older than this many blocks below the tip are pruned from the store.
REORG_DEPTH = 2016
#: Blocks fetched per round trip at most (hashes and blocks are batched separately) ...
BLOCK_BATCH = 20
#: ... and about this many bytes of raw block per round trip (hex doubles it in the JSON).
BATCH_BYTES = 8_000_000

#: ``derive(change, index) -> (script_pubkey, address)`` for the wallet's descriptor.
Deriver = Callable[[bool, int], tuple[bytes, str]]
#: ``progress(height, tip)`` called after each committed batch.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ScanResult:
    """What one ``sync()`` did."""

    start_height: int  # first block scanned (tip + 1 when nothing was new)
    tip_height: int  # height scanned up to
    blocks: int
    transactions: int  # transactions parsed
    received: int  # new wallet outputs found (confirmed or not)
    spent: int  # wallet outputs found spent
    reorg_fork: int | None  # fork height when a reorg was rolled back
    seconds: float


@dataclass
class _Counters:
    blocks: int = 0
    transactions: int = 0
    received: int = 0
    spent: int = 0


class Watchlist:
    """The scripts the scanner matches: every derived address within the gap window."""

    def __init__(self, store: Store, wallet_id: int, derive: Deriver, gap_limit: int) -> None:
        self.store, self.wallet_id, self.derive, self.gap_limit = store, wallet_id, derive, gap_limit
        self.scripts: dict[bytes, AddressRecord] = {}
        self._top: dict[bool, int] = {}  # highest derived index per branch
        self._last: dict[bool, int] = {}  # highest used-or-issued index per branch

    def load(self) -> None:
        """Read the derived addresses from the store and extend both windows."""
        self.scripts = {a.script: a for a in self.store.addresses(self.wallet_id)}
        for change in (False, True):
            self._top[change], self._last[change] = self.store.branch_state(self.wallet_id, change)
            self.extend(change)

    def extend(self, change: bool) -> None:
        """Derive (and store) addresses up to ``last used + gap_limit`` on a branch."""
        target = self._last[change] + self.gap_limit
        start = self._top[change] + 1
        if start > target:
            return
        new = []
        for index in range(start, target + 1):
            script, address = self.derive(change, index)
            new.append(AddressRecord(change, index, script, address))
        self.store.add_addresses(self.wallet_id, new)
        for a in new:
            self.scripts[a.script] = a
        self._top[change] = target

    def mark_issued(self, change: bool, index: int) -> None:
        """An address was handed out: keep ``gap_limit`` unused addresses beyond it."""
        if index > self._last[change]:
            self._last[change] = index
            self.extend(change)

    def mark_used(self, record: AddressRecord) -> None:
        if not record.used:
            self.store.mark_used(self.wallet_id, record.change, record.index)
            self.scripts[record.script] = AddressRecord(
                record.change, record.index, record.script, record.address, True, record.issued, record.label
            )
        if record.index > self._last[record.change]:
            self._last[record.change] = record.index
            self.extend(record.change)


class Scanner:
    """Follows the chain for a wallet of a store. Constructing it touches nothing.

    The store's scanned height is one for the whole store, so one scanner follows every
    generation of the wallet at once (``also``: the older generations' ids and derivers,
    see ``wallet rotate``): a coin paid to a retired generation years later, such as a
    channel's cooperative close to the address it committed at open, is still found."""

    def __init__(
        self,
        store: Store,
        wallet_id: int,
        chain: ChainSource,
        derive: Deriver,
        gap_limit: int = 20,
        birthday: int = 0,
        also: Sequence[tuple[int, Deriver]] = (),
    ) -> None:
        self.store, self.wallet_id, self.chain = store, wallet_id, chain
        self.birthday = birthday
        self.watch = Watchlist(store, wallet_id, derive, gap_limit)
        self.watches = [self.watch, *(Watchlist(store, wid, d, gap_limit) for wid, d in also)]
        self._outpoints: dict[tuple[bytes, int], UtxoRecord] = {}

    def _load_watches(self) -> None:
        for watch in self.watches:
            watch.load()

    def _watch_of(self, script: bytes) -> Watchlist | None:
        for watch in self.watches:
            if script in watch.scripts:
                return watch
        return None

    # --- the loop ------------------------------------------------------------------

    def sync(self, progress: Progress | None = None, mempool: bool = True) -> ScanResult:
        """Scan from the last scanned block (or the birthday) to the tip; see the module doc."""
        started = time.monotonic()
        counters = _Counters()
        with self.store.transaction():
            self._load_watches()
        self._load_outpoints()
        fork = self._handle_reorg()
        scanned = self.store.scanned_tip()
        start = scanned[0] + 1 if scanned else self.birthday
        height = start - 1
        for _ in range(10):  # a reorg during the scan sends us back; give up after a few
            tip = self.chain.tip_height()
            height, reorged = self._scan_range(height + 1, tip, counters, progress)
            if not reorged:
                break
            fork = self._handle_reorg()
            scanned = self.store.scanned_tip()
            height = scanned[0] if scanned else self.birthday - 1
        else:
            raise ChainError(f"the chain at {self.chain.url} keeps reorganising; try `wallet sync` again later")
        if mempool:
            self._scan_mempool(counters)
        with self.store.transaction():
            self.store.prune_blocks(height - REORG_DEPTH)
        return ScanResult(
            start_height=start,
            tip_height=max(height, start - 1),
            blocks=counters.blocks,
            transactions=counters.transactions,
            received=counters.received,
            spent=counters.spent,
            reorg_fork=fork,
            seconds=time.monotonic() - started,
        )

    def _scan_range(self, start: int, tip: int, counters: _Counters, progress: Progress | None) -> tuple[int, bool]:
        """Scan blocks start..tip; returns (last height scanned, whether a reorg interrupted)."""
        height = start - 1
        prev = self.store.block_hash(height) if height >= 0 else None
        batch = BLOCK_BATCH
        while height < tip:
            count = min(batch, tip - height)
            hashes = self.chain.block_hashes(height + 1, count)
            blocks = self.chain.raw_blocks(hashes)
            average = sum(len(b) for b in blocks) / len(blocks)
            batch = max(1, min(BLOCK_BATCH, int(BATCH_BYTES / max(average, 1.0))))
            with self.store.transaction():
                for block_hash, raw in zip(hashes, blocks):
                    parent = raw[4:36][::-1].hex()
                    if prev is not None and parent != prev:
                        return height, True  # the chain changed under us
                    if _block_hash(raw) != block_hash:
                        raise ChainError(f"block {block_hash} from {self.chain.url} does not hash to its id")
                    height += 1
                    self._scan_block(raw, height, block_hash, counters)
                    self.store.set_block(height, block_hash)
                    prev = block_hash
            if progress is not None:
                progress(height, tip)
        return height, False

    def _scan_block(self, raw: bytes, height: int, block_hash: str, counters: _Counters) -> None:
        stream = io.BytesIO(raw)
        stream.seek(80)
        n_tx = compact.read_from(stream)
        for _ in range(n_tx):
            begin = stream.tell()
            tx = Transaction.read_from(stream)
            counters.transactions += 1
            self._scan_tx(tx, raw, begin, stream.tell(), height, block_hash, counters)
        counters.blocks += 1

    def _scan_tx(
        self,
        tx: Transaction,
        raw: bytes,
        begin: int,
        end: int,
        height: int | None,
        block_hash: str | None,
        counters: _Counters,
    ) -> bool:
        """Apply one transaction's effect on the wallet; True if it touched it."""
        outpoints = self._outpoints
        spends = [(i.txid, i.vout) for i in tx.vin if (i.txid, i.vout) in outpoints]
        pays = [(n, o, w) for n, o in enumerate(tx.vout) if (w := self._watch_of(o.script_pubkey.data)) is not None]
        if not spends and not pays:
            return False
        txid_b = tx.txid()
        txid = txid_b.hex()
        self.store.add_transaction(txid, raw[begin:end], height, block_hash)
        for key in spends:
            utxo = outpoints[key]
            if utxo.spent_by != txid or utxo.spent_height != height:
                if utxo.spent_by is None:
                    counters.spent += 1
                self.store.spend_utxo(utxo.txid, utxo.vout, txid, height)
                outpoints[key] = _replace(utxo, spent_by=txid, spent_height=height)
        for vout, out, watch in pays:
            addr = watch.scripts[out.script_pubkey.data]
            utxo = UtxoRecord(
                txid, vout, out.value, out.script_pubkey.data, addr.change, addr.index, height, block_hash
            )
            known = outpoints.get((txid_b, vout))
            if known is None:
                counters.received += 1
            self.store.add_utxo(watch.wallet_id, utxo)
            if known is None or known.height != height:
                outpoints[(txid_b, vout)] = utxo if known is None else _replace(known, height=height)
            watch.mark_used(addr)
        return True

    def record_unconfirmed(self, raw: bytes) -> bool:
        """Apply a transaction we just broadcast (spends and change) before any block has it."""
        with self.store.transaction():
            self._load_watches()
            self._load_outpoints()
            tx = Transaction.parse(raw)
            known, height = self.store.transaction_height(tx.txid().hex())
            if known and height is not None:
                return True  # already confirmed: nothing to add
            return self._scan_tx(tx, raw, 0, len(raw), None, None, _Counters())

    # --- reorgs and mempool -----------------------------------------------------------

    def _load_outpoints(self) -> None:
        self._outpoints = {
            (bytes.fromhex(u.txid), u.vout): u
            for watch in self.watches
            for u in self.store.utxos(watch.wallet_id, unspent=False)
            if u.spent_by is None or u.spent_height is None
        }

    def _handle_reorg(self) -> int | None:
        """Roll back to the fork point if stored block hashes left the best chain."""
        scanned = self.store.scanned_tip()
        if scanned is None:
            return None
        height, stored = scanned
        tip = self.chain.tip_height()
        if height <= tip and self.chain.block_hash(height) == stored:
            return None
        h = min(height, tip)
        while h >= 0 and (stored_h := self.store.block_hash(h)) is not None:
            if self.chain.block_hash(h) == stored_h:
                break
            h -= 1
        else:
            if h >= self.birthday:
                raise ChainError(
                    f"the chain at {self.chain.url} reorganised below block {h + 1}, deeper than the "
                    f"{REORG_DEPTH} block hashes kept; check the chain source is on the right network"
                )
            # every block since the birthday was replaced (e.g. a fresh regtest chain)
            h = self.birthday - 1
        with self.store.transaction():
            self.store.rollback_above(h)
            self.store.audit("scanner", "reorg", f"block {h + 1}", {"scanned_to": height, "fork": h})
        self._load_outpoints()
        return h

    def _scan_mempool(self, counters: _Counters) -> None:
        """Record unconfirmed payments/spends; forget unconfirmed txs that left the mempool."""
        mempool = self.chain.mempool_txids()
        in_pool = set(mempool)
        with self.store.transaction():
            for txid in self.store.unconfirmed_txids():
                if txid not in in_pool:
                    self.store.drop_unconfirmed(txid)
                    self.store.audit("scanner", "dropped-unconfirmed", txid, {})
        self._load_outpoints()
        fetch = []
        known_raw: list[bytes] = []
        for txid in mempool:
            known, height = self.store.transaction_height(txid)
            if known and height is not None:
                continue
            raw = self.store.transaction_raw(txid) if known else None
            if raw is not None:
                known_raw.append(raw)
            else:
                fetch.append(txid)
        raws = known_raw + self._fetch_transactions(fetch)
        with self.store.transaction():
            for tx, raw in _in_dependency_order(raws):
                counters.transactions += 1
                self._scan_tx(tx, raw, 0, len(raw), None, None, counters)

    def _fetch_transactions(self, txids: list[str]) -> list[bytes]:
        out = []
        for txid in txids:
            try:
                out.append(self.chain.raw_transaction(txid))
            except ChainError:
                continue  # left the mempool meanwhile
        return out


def _block_hash(raw: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(raw[:80]).digest()).digest()[::-1].hex()


def _replace(u: UtxoRecord, **changes: object) -> UtxoRecord:
    return dataclasses.replace(u, **changes)  # type: ignore[arg-type]


def _in_dependency_order(raws: list[bytes]) -> list[tuple[Transaction, bytes]]:
    """Parents before children, so a chain of unconfirmed spends is matched in one pass."""
    txs = {}
    for raw in raws:
        tx = Transaction.parse(raw)
        txs[tx.txid()] = (tx, raw)
    done: set[bytes] = set()
    order: list[tuple[Transaction, bytes]] = []

    def visit(txid: bytes) -> None:
        if txid in done:
            return
        done.add(txid)
        tx, raw = txs[txid]
        for inp in tx.vin:
            if inp.txid in txs:
                visit(inp.txid)
        order.append((tx, raw))

    for txid in txs:
        visit(txid)
    return order
