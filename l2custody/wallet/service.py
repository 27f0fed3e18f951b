"""The Wallet: config + store + descriptor + chain, glued into the wallet operations.

The pure wallet modules (descriptor, psbt, review, coinselect, policy,
signers) know nothing about storage or the network; this class gives them
both. Every operation that changes something persists it before the step
that depends on it (an address is recorded before it is shown, UTXOs are
reserved with the PSBT session before the PSBT leaves, a broadcast is marked
"broadcasting" before the transaction is sent) and writes an audit entry.

PSBT sessions: every PSBT this wallet creates is saved as a session (id =
the first 16 hex digits of its txid) with the outputs that were verified,
and carries the id in a proprietary global field. Signing, combining,
finalizing and broadcasting run :meth:`Wallet.verify` first; a PSBT that
matches no session, or whose transaction differs from its session's, is
refused, naming the output that changed.

Cheap to construct: the store is opened, but the descriptor is parsed and
the chain source built only when first needed, so ``wallet balance`` starts
fast and without the network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.config import Config, load_config
from l2custody.errors import (
    DescriptorError,
    PsbtError,
    StoreError,
    UsageError,
)
from l2custody.numbers import is_decimal, is_positive
from l2custody.store import Store, UtxoRecord, WalletRecord
from l2custody.text_files import read_text
from l2custody.user_paths import is_existing_file
from l2custody.wallet.actor import default_actor
from l2custody.wallet.pipeline import (
    CUSTODY_KINDS,
    BroadcastResult,
    PsbtPipeline,
    PsbtSession,
    SignResult,
    is_pipeline_session,
)

if TYPE_CHECKING:  # pragma: no cover
    from embit.psbt import PSBT

    from l2custody.chain.base import ChainSource
    from l2custody.chain.scanner import Scanner, ScanResult, Watchlist
    from l2custody.wallet.descriptors import WalletDescriptor
    from l2custody.wallet.policy import Policy
    from l2custody.wallet.psbt import Utxo


@dataclass(frozen=True)
class AddressInfo:
    address: str
    change: bool
    index: int
    used: bool
    issued: bool
    label: str | None


@dataclass(frozen=True)
class Balance:
    """Sats by state. ``spendable`` is what a new spend may use (confirmed enough, not reserved)."""

    confirmed: int
    unconfirmed: int
    reserved: int
    spendable: int
    utxos: int
    scanned_height: int | None

    @property
    def total(self) -> int:
        return self.confirmed + self.unconfirmed


@dataclass(frozen=True)
class UtxoInfo:
    txid: str
    vout: int
    value: int
    address: str
    change: bool
    index: int
    height: int | None
    confirmations: int
    reserved_by: str | None

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


def open_wallet(config_path: Path | str | None = None, chain: ChainSource | None = None) -> Wallet:
    """Load the config (``--config`` / ``$L2CUSTODY_CONFIG`` / default) and open its wallet."""
    return Wallet.open(load_config(config_path), chain=chain)


def _looks_like_a_path(text: str) -> bool:
    """``./x.json``, ``~/wallet.txt``, ``/a/b``: one word, with a folder or a file suffix,
    nothing a descriptor, a BSMS record or JSON holds."""
    word = text.strip()
    if not word or any(c.isspace() for c in word) or any(c in word for c in "()[]{}<>\"'"):
        return False
    return word.startswith(("/", "~", "./", "../")) or word.lower().endswith((".json", ".txt", ".bsms", ".dat"))


class Wallet(PsbtPipeline):
    """One multisig wallet of one store. See the module docstring for the promises.

    The PSBT steps (verify, sign, combine, finalize, broadcast) come from
    :class:`~l2custody.wallet.pipeline.PsbtPipeline`.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        record: WalletRecord,
        chain: ChainSource | None = None,
        actor: str | None = None,
    ) -> None:
        self.config, self.store, self.record = config, store, record
        #: who the audit log names for this wallet's actions (OS user by default; "custody" etc. for services)
        self.actor = actor or default_actor()
        self._chain = chain
        self._network_checked = False
        #: a wallet opened for "the wallet" follows `wallet rotate` made meanwhile (by another process
        #: while `watch`, `node guard` or the CLN plugin run); one opened for a given generation stays there
        self.follows_newest = True

    # --- opening and creating ------------------------------------------------------------

    @classmethod
    def open(cls, config: Config, chain: ChainSource | None = None, name: str | None = None) -> Wallet:
        """The wallet in ``config``'s store (WalletNotFound if none was created)."""
        store = Store.open(config.store_path)
        try:
            return cls.over(config, store, chain, name)
        except BaseException:
            store.close()
            raise

    @classmethod
    def over(cls, config: Config, store: Store, chain: ChainSource | None = None, name: str | None = None) -> Wallet:
        """The wallet in the open ``store`` of ``config`` (the wallet closes the store when closed)."""
        from l2custody.wallet.record import wallet_record

        return cls(config, store, wallet_record(config, store, name), chain)

    @classmethod
    def create(
        cls,
        config: Config,
        threshold: int,
        keys: Sequence[str],
        name: str = "treasury",
        birthday: int | None = None,
        chain: ChainSource | None = None,
        recovery: Sequence[str] = (),
    ) -> Wallet:
        """Create the ``wsh(sortedmulti(K, keys.../<0;1>/*))`` wallet and save it.

        With ``recovery`` paths (``KEY@BLOCKS`` or ``K:KEY1,KEY2,...@BLOCKS``)
        it is the recovery wallet ``wsh(or_d(multi(K,keys...),and_v(v:pkh(KEY),
        older(BLOCKS))))`` instead, stacked as Liana writes it.
        """
        from l2custody.wallet.descriptor import MultisigDescriptor
        from l2custody.wallet.miniscript import RecoveryDescriptor

        desc: WalletDescriptor
        if recovery:
            desc = RecoveryDescriptor.from_keys(threshold, list(keys), list(recovery), config.embit_network)
        else:
            desc = MultisigDescriptor.from_keys(threshold, list(keys), config.embit_network)
        return cls._save(config, desc, name, birthday, "wallet-created", chain)

    @classmethod
    def import_(
        cls,
        config: Config,
        source: str,
        name: str | None = None,
        birthday: int | None = None,
        chain: ChainSource | None = None,
    ) -> Wallet:
        """Import a descriptor or another tool's wallet file (``wallet.formats`` lists them).

        ``source`` is the text itself or a path to a file holding it.
        """
        from l2custody.wallet.formats import import_wallet

        text = source
        if is_existing_file(source):  # else it is the text itself (a descriptor may be long)
            text = read_text(source, "the wallet file", DescriptorError)
        elif _looks_like_a_path(source):
            read_text(source, "the wallet file", DescriptorError)  # says why there is no file there
        imported = import_wallet(text, network=config.embit_network)
        wallet_name = name or imported.name or "treasury"
        action = f"wallet-imported-{imported.source}"
        return cls._save(config, imported.descriptor, wallet_name, birthday, action, chain)

    @classmethod
    def _save(
        cls,
        config: Config,
        desc: WalletDescriptor,
        name: str,
        birthday: int | None,
        action: str,
        chain: ChainSource | None,
    ) -> Wallet:
        if desc.network != config.embit_network:
            from l2custody.errors import NetworkMismatch

            raise NetworkMismatch(f"the descriptor is for {desc.network} but the config is for {config.network}")
        store = Store.open(config.store_path)
        try:
            existing = store.wallets()
            if existing:
                raise StoreError(
                    f"{config.store_path} already holds the wallet {existing[0].name!r}; one wallet per config. "
                    "Use another --config (with its own data_dir) for a second wallet"
                )
            start = config.wallet.birthday if birthday is None else birthday
            if start < 0:
                raise UsageError(f"birthday must be a block height (0 or more), got {start}")
            with store.transaction():
                record = store.add_wallet(name, desc.to_string(), desc.network, start)
                store.audit(
                    default_actor(),
                    action,
                    f"wallet {name}",
                    {"descriptor": record.descriptor, "id": desc.descriptor_id, "birthday": start},
                )
        except BaseException:
            store.close()
            raise
        wallet = cls(config, store, record, chain)
        wallet.__dict__["descriptor"] = desc  # prime the cached_property: no need to parse it again
        return wallet

    def close(self) -> None:
        self.store.close()
        close = getattr(self._chain, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Wallet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- lazily built parts --------------------------------------------------------------

    @functools.cached_property
    def descriptor(self) -> WalletDescriptor:
        from l2custody.wallet.descriptors import parse_wallet_descriptor

        return parse_wallet_descriptor(self.record.descriptor, network=self.record.network)

    @functools.cached_property
    def policy(self) -> Policy:
        from l2custody.wallet.policy import Policy

        return Policy.from_config(self.config.policy)

    @property
    def chain(self) -> ChainSource:
        """The chain source, built on first use and checked to be on the wallet's network."""
        if self._chain is None:
            from l2custody.chain.rpc import JsonRpcChain

            self._chain = JsonRpcChain.from_config(self.config.chain)
        if not self._network_checked:
            self._chain.check_network(self.record.network)
            self._network_checked = True
        return self._chain

    def warnings(self) -> list[str]:
        """Descriptor warnings (legal but probably a mistake, e.g. BIP-48 coin type)."""
        return self.descriptor.warnings()

    def export(self, fmt: str = "descriptor") -> str:
        """The wallet as a descriptor, a BSMS record or Core ``importdescriptors`` JSON."""
        from l2custody.wallet.formats import export_wallet

        return export_wallet(self.descriptor, fmt)

    # --- addresses ------------------------------------------------------------------------

    def _scanner(self) -> Scanner:
        """The scanner of every generation at once (the store's scanned height is one for all)."""
        from l2custody.chain.scanner import Scanner

        others = [self.sibling(r) for r in self.store.generations(self.record.name) if r.id != self.record.id]
        return Scanner(
            self.store,
            self.record.id,
            self.chain,
            self._derive,
            gap_limit=self.config.wallet.gap_limit,
            birthday=min([self.record.birthday, *(o.record.birthday for o in others)]),
            also=[(o.record.id, o._derive) for o in others],
        )

    # --- generations (wallet rotate; wallet/generations.py) ------------------------------------

    def sibling(self, record: WalletRecord) -> Wallet:
        """The wallet of another generation, sharing this one's store and chain (do not close it:
        closing this wallet closes both). It stays on that generation."""
        if record.id == self.record.id:
            return self
        other = Wallet(self.config, self.store, record, self._chain, self.actor)
        other.follows_newest = False
        return other

    def _follow_newest(self) -> None:
        """Switch to the newest generation if `wallet rotate` made one since this wallet was opened."""
        if not self.follows_newest:
            return
        newest = self.store.wallet(self.record.name)
        if newest.id != self.record.id:
            self.record = newest
            self.__dict__.pop("descriptor", None)  # the cached_property of the old generation

    def for_session(self, session_id: str) -> Wallet:
        """The wallet of the generation that created session ``session_id`` (a migration
        PSBT is signed and broadcast by the old generation that owns its coins)."""
        wallet_id = self.store.psbt_wallet_id(session_id)
        if wallet_id is None or wallet_id == self.record.id:
            return self
        return self.sibling(self.store.wallet(wallet_id=wallet_id))

    def for_psbt(self, psbt: PSBT) -> Wallet:
        """The wallet of the generation whose session ``psbt`` belongs to (self if none)."""
        rec = self.session_record(psbt)
        return self if rec is None else self.for_session(rec.id)

    def owned_scripts(self) -> dict[bytes, tuple[int, bool, int]]:
        """Every address script of every generation -> (generation, change, index)."""
        generation = {r.id: r.generation for r in self.store.generations(self.record.name)}
        return {a.script: (generation.get(wid, 0), a.change, a.index) for wid, a in self.store.all_addresses()}

    def _derive(self, change: bool, index: int) -> tuple[bytes, str]:
        d = self.descriptor.derive(change, index)
        return d.script_pubkey, d.address

    def _watchlist(self) -> Watchlist:
        """The gap window, loaded (call inside a store transaction)."""
        from l2custody.chain.scanner import Watchlist

        watch = Watchlist(self.store, self.record.id, self._derive, self.config.wallet.gap_limit)
        watch.load()
        return watch

    def next_address(self, label: str | None = None, change: bool = False) -> AddressInfo:
        """The lowest address never used nor handed out; recorded as issued before it is returned.
        Always of the newest generation (unless this wallet was opened for an older one)."""
        with self.store.transaction():
            self._follow_newest()
            watch = self._watchlist()
            fresh = [a for a in self.store.addresses(self.record.id, change=change, used=False) if not a.issued]
            rec = fresh[0]
            self.store.issue_address(self.record.id, change, rec.index, label)
            watch.mark_issued(change, rec.index)
            self.store.audit(
                self.actor, "address-issued", rec.address, {"change": change, "index": rec.index, "label": label}
            )
        return AddressInfo(rec.address, change, rec.index, False, True, label)

    def addresses(self, show_used: bool = False, change: bool = False) -> list[AddressInfo]:
        """Addresses of a branch up to the highest used or issued one (used ones only with ``show_used``)."""
        _top, last = self.store.branch_state(self.record.id, change)
        out = []
        for a in self.store.addresses(self.record.id, change=change):
            if a.index > last or (a.used and not show_used):
                continue
            out.append(AddressInfo(a.address, a.change, a.index, a.used, a.issued, a.label))
        return out

    # --- chain following ------------------------------------------------------------------

    def sync(self, progress: Callable[[int, int], None] | None = None) -> ScanResult:
        """Scan new blocks (and the mempool) for the wallet; resumes where the last sync stopped."""
        result = self._scanner().sync(progress=progress, mempool=self.config.wallet.mempool)
        self._update_session_states()
        return result

    def _update_session_states(self) -> None:
        """Sessions whose transaction the scan found (or lost in a reorg) follow it."""
        with self.store.transaction():
            for state in ("broadcast-unknown", "broadcast", "confirmed"):
                for rec in self.store.psbts(state=state):
                    if rec.txid is None or not is_pipeline_session(rec):
                        continue  # other layers' rows follow their own rules
                    known, height = self.store.transaction_height(rec.txid)
                    if not known:
                        continue  # not seen (yet): an unknown broadcast stays unknown
                    new = "confirmed" if height is not None else "broadcast"
                    if new != rec.state:
                        self.store.update_psbt(rec.id, state=new, details={"height": height})
                        self.store.audit(self.actor, f"tx-{new}", rec.id, {"txid": rec.txid, "height": height})

    def _tip(self) -> int | None:
        scanned = self.store.scanned_tip()
        return scanned[0] if scanned else None

    def utxos(self, include_reserved: bool = True) -> list[UtxoInfo]:
        """Unspent outputs (unconfirmed included) with their address index and confirmations."""
        tip = self._tip()
        addr = {(a.change, a.index): a.address for a in self.store.addresses(self.record.id)}
        return [
            UtxoInfo(
                u.txid,
                u.vout,
                u.value,
                addr.get((u.change, u.index), ""),
                u.change,
                u.index,
                u.height,
                _confirmations(u, tip),
                u.reserved_by,
            )
            for u in self.store.utxos(self.record.id, include_reserved=include_reserved)
        ]

    def balance(self) -> Balance:
        """Balance from the store (no network): run :meth:`sync` first for fresh figures."""
        tip = self._tip()
        utxos = self.store.utxos(self.record.id)
        min_conf = self.config.wallet.min_confirmations
        return Balance(
            confirmed=sum(u.value for u in utxos if u.height is not None),
            unconfirmed=sum(u.value for u in utxos if u.height is None),
            reserved=sum(u.value for u in utxos if u.reserved_by is not None),
            spendable=sum(
                u.value for u in utxos if u.reserved_by is None and _confirmations(u, tip) >= max(min_conf, 0)
            ),
            utxos=len(utxos),
            scanned_height=tip,
        )

    # --- spending: creating a session ---------------------------------------------------------

    def fee_rate(self, fee_rate: float | None = None) -> float:
        """The fee rate to use: the given one, the chain's estimate, or the configured fallback."""
        if fee_rate is not None:
            if not is_positive(fee_rate):
                raise UsageError(f"fee rate must be positive, got {fee_rate}")
            return float(fee_rate)
        estimate = self.chain.estimate_fee_rate(6)
        if estimate is not None:
            return max(estimate, 1.0)
        if self.config.wallet.fallback_fee_rate is not None:
            return self.config.wallet.fallback_fee_rate
        raise UsageError(
            f"the chain source {self.chain.url} has no fee estimate; pass --fee-rate (sat/vB) "
            "or set [wallet] fallback_fee_rate in the config"
        )

    def spendable_coins(self, outpoints: Sequence[str] | None = None) -> list[UtxoRecord]:
        """Coins a new spend may use; with ``outpoints`` ("txid:n"), exactly those (checked)."""
        tip = self._tip()
        min_conf = self.config.wallet.min_confirmations
        if outpoints is None:
            return [
                u
                for u in self.store.utxos(self.record.id, include_reserved=False)
                if _confirmations(u, tip) >= min_conf
            ]
        chosen = []
        for text in outpoints:
            txid, vout = _outpoint(text)
            u = self.store.utxo(txid, vout)
            if u is None:
                raise UsageError(f"{text} is not a coin of this wallet; see `l2custody wallet utxos`")
            if u.spent_by is not None:
                raise UsageError(f"{text} is already spent (by {u.spent_by})")
            if u.reserved_by is not None:
                raise UsageError(f"{text} is reserved by session {u.reserved_by}; finish or abort that session first")
            chosen.append(u)
        return chosen

    def psbt_utxo(self, u: UtxoRecord) -> Utxo:
        """The wallet.psbt Utxo of a stored coin (with its previous transaction for hardware signers)."""
        from l2custody.wallet.psbt import Utxo

        return Utxo(u.txid, u.vout, u.value, u.script, u.change, u.index, u.height, self.store.transaction_raw(u.txid))

    def create_send(
        self,
        address: str,
        amount: int,
        fee_rate: float | None = None,
        utxos: Sequence[str] | None = None,
        subtract_fee: bool = False,
        recovery: int | None = None,
    ) -> PsbtSession:
        """Build, verify and save a PSBT paying ``amount`` sats to ``address``; reserves its coins.

        The destination must be our own or allowed by the policy
        (PolicyViolation says how to allow it); checked before anything is built.
        ``recovery``: see :meth:`build_spend`.
        """
        from l2custody.wallet.psbt import TxOut

        out = TxOut.to_address(address, int(amount), self.record.network)
        if out.script_pubkey not in self._known_scripts():
            self.policy.check_destination(0, out.address, out.value, out.script_pubkey, self.record.network)
        psbt = self.build_spend(
            [out], fee_rate, utxos, subtract_fee_from=0 if subtract_fee else None, recovery=recovery
        )
        return self.save_session(psbt, "send", expected_outputs=None, details={"to": address})

    def build_spend(
        self,
        outputs: Sequence[Any],
        fee_rate: float | None = None,
        utxos: Sequence[str] | None = None,
        subtract_fee_from: int | None = None,
        recovery: int | None = None,
    ) -> PSBT:
        """An unsigned PSBT paying ``outputs`` (wallet.psbt.TxOut) from the wallet's coins, not saved.

        Coin selection is wallet/coinselect.py's (see its docstring) over the
        spendable coins; with ``utxos`` ("txid:n") exactly those are spent. A
        change address is recorded (issued) before it goes into the PSBT. Pass
        the result to :meth:`save_session` to verify it and reserve its coins.
        ``recovery`` (a recovery wallet only) is the delay of the recovery path
        the spend uses: its inputs get that nSequence (the node accepts the
        spend once each coin has that many confirmations) and fees are sized
        for that path.
        """
        from l2custody.wallet import coinselect
        from l2custody.wallet.psbt import build_psbt

        self._follow_newest()
        if not outputs:
            raise UsageError("nothing to pay: give at least one output")
        rate = self.fee_rate(fee_rate)
        coins = [self.psbt_utxo(u) for u in self.spendable_coins(utxos)]
        if utxos is None:
            sel = coinselect.select(
                coins,
                sum(o.value for o in outputs),
                rate,
                desc=self.descriptor,
                output_script_lens=[len(o.script_pubkey) for o in outputs],
                subtract_fee=subtract_fee_from is not None,
                recovery=recovery,
            )
            coins, wants_change = list(sel.utxos), sel.change > 0
        else:
            wants_change = True
        tip = self.chain.tip_height()
        change = self.next_address(label="change", change=True) if wants_change else None
        return build_psbt(
            self.descriptor,
            coins,
            list(outputs),
            change.index if change else None,
            rate,
            tip,
            subtract_fee_from=subtract_fee_from,
            recovery=recovery,
        )

    def save_session(
        self,
        psbt: PSBT,
        kind: str,
        expected_outputs: Sequence[Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> PsbtSession:
        """Verify a freshly built PSBT and save it as a session, reserving its inputs.

        ``expected_outputs`` (wallet.psbt.TxOut) are the foreign outputs the
        session may pay (e.g. channel funding outputs; the destination policy
        is then not consulted). Without them the policy decides, and the
        foreign outputs that passed are what later steps insist on.
        """
        from l2custody.wallet.pipeline import SESSION_KEY
        from l2custody.wallet.psbt import psbt_txid
        from l2custody.wallet.review import verify

        summary = verify(psbt, self.descriptor, self.policy, expected_outputs, known_scripts=self._known_scripts())
        session_id = psbt_txid(psbt)[:16]
        psbt.unknown[SESSION_KEY] = session_id.encode()
        # what later steps insist on: every output but our change (payments to ourselves included)
        foreign = [
            {"script": o.script_pubkey, "value": o.value, "address": o.address}
            for o in summary.outputs
            if not (o.ours and o.change)
        ]
        info = {
            "expected_outputs": foreign,
            "policy_checked": expected_outputs is None,
            "fee": summary.fee,
            "fee_rate": summary.fee_rate,
            **(details or {}),
        }
        with self.store.transaction():
            self.store.add_psbt(
                session_id, self.record.id, kind, "verified", psbt.to_base64(), summary.fingerprint, info
            )
            self.store.reserve_utxos([(i.txid, i.vout) for i in summary.inputs], session_id)
            self.store.audit(
                self.actor,
                "psbt-created",
                session_id,
                {"kind": kind, "fingerprint": summary.fingerprint, "fee": summary.fee, "outputs": foreign},
            )
        return PsbtSession(session_id, kind, "verified", psbt, summary, summary.txid, info)

    def abort(self, session_id: str, reason: str = "") -> int:
        """Abandon an unbroadcast session: its coins are released. Returns how many."""
        rec = self.store.psbt(session_id)
        if rec.kind in CUSTODY_KINDS:
            raise PsbtError(
                f"session {session_id} funds Lightning channels; abort it with `l2custody session abort "
                f"{session_id}` (it also makes the nodes forget the channels)"
            )
        if rec.state in ("broadcasting", "broadcast", "confirmed"):
            raise PsbtError(f"session {session_id} is {rec.state}; it cannot be aborted any more")
        with self.store.transaction():
            released = self.store.release_utxos(session_id)
            self.store.update_psbt(session_id, state="aborted", details={"abort_reason": reason})
            self.store.audit(self.actor, "psbt-aborted", session_id, {"released": released, "reason": reason})
        return released

    def _known_scripts(self) -> dict[bytes, tuple[bool, int]]:
        return {a.script: (a.change, a.index) for a in self.store.addresses(self.record.id)}


def _confirmations(u: UtxoRecord, tip: int | None) -> int:
    if u.height is None or tip is None:
        return 0
    return max(tip - u.height + 1, 0)


def _outpoint(text: str) -> tuple[str, int]:
    txid, sep, vout = text.strip().partition(":")
    if not sep or len(txid) != 64 or not is_decimal(vout):
        raise UsageError(f"{text!r} is not an outpoint; write it as TXID:N (see `l2custody wallet utxos`)")
    try:
        bytes.fromhex(txid)
    except ValueError:
        raise UsageError(f"{text!r} is not an outpoint: the txid is not hex") from None
    return txid.lower(), int(vout)


__all__ = [
    "AddressInfo",
    "Balance",
    "BroadcastResult",
    "PsbtSession",
    "SignResult",
    "UtxoInfo",
    "Wallet",
    "open_wallet",
]
