"""What the enforcement rules ask, answered from the wallet's store and the node's wallet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.service import Wallet

#: Funding sessions whose outputs are not (or no longer) to be paid.
_SETTLED = ("aborted", "failed", "confirmed")


class WalletFacts:
    """``rules.EnforceFacts`` over an open wallet (thread-safe: one lock around the store)."""

    def __init__(self, wallet: Wallet, node_addresses: Callable[[], frozenset[str]], lock: threading.RLock) -> None:
        self.wallet = wallet
        self.lock = lock
        self.network = wallet.config.embit_network
        self.config_path = str(wallet.config.path)
        policy = wallet.policy
        self.max_fee_sat = policy.max_fee_sat
        self.max_fee_rate = policy.max_fee_rate
        self._allow_any = policy.allow_any
        self._allowed = policy.allowed_scripts(self.network)  # NetworkMismatch names a wrong entry
        self._node_addresses = node_addresses
        self._known: frozenset[str] = frozenset()
        self._load_window()

    def _load_window(self) -> None:
        """Derive the gap window into the store, so ``ours`` knows every address in it."""
        from l2custody.chain.scanner import Watchlist

        desc = self.wallet.descriptor

        def derive(change: bool, index: int) -> tuple[bytes, str]:
            d = desc.derive(change, index)
            return d.script_pubkey, d.address

        with self.lock, self.wallet.store.transaction():
            Watchlist(self.wallet.store, self.wallet.record.id, derive, self.wallet.config.wallet.gap_limit).load()

    def ours(self, script: bytes) -> bool:
        with self.lock:
            return self.wallet.store.address_by_script(bytes(script)) is not None

    def allowed(self, script: bytes) -> bool:
        return self._allow_any or bytes(script) in self._allowed

    def session_output(self, script: bytes) -> bool:
        with self.lock:
            records = self.wallet.store.psbts(kind="funding")
        target = bytes(script).hex()
        return any(
            o.get("script") == target
            for rec in records
            if rec.state not in _SETTLED
            for o in rec.details.get("expected_outputs", [])
        )

    def node_owns(self, address: str) -> bool:
        if address not in self._known:  # a new change address: ask the node again
            self._known = self._node_addresses()
        return address in self._known

    def spent_value(self, txid: str, vout: int) -> int | None:
        from embit.transaction import Transaction

        try:
            tx = Transaction.parse(self.wallet.chain.raw_transaction(txid))
            return int(tx.vout[vout].value)
        except Exception:  # unknown to the chain source (no txindex), or unreachable
            return None
