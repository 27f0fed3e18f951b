"""The one context every flow works in: the wallet, the nodes by name, and progress.

Every command that touches custody (``channel open/list/show/close``,
``session ...``, ``sweep``, ``node guard``, ``report``) and ``watch``'s upkeep
work with a :class:`Custody`: the multisig wallet (store, chain, signers), a
way to reach registered nodes by name, and a progress callback for people
watching. :func:`open_custody` builds it from the config. Backends are built
lazily (no network until the first call), opened once per name (lnd keeps a
negotiation's stream in the backend object) and closed with the context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import NodeBackend

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.backends.node_registry import NodeRegistry
    from l2custody.chain.base import ChainSource
    from l2custody.config import Config
    from l2custody.custody.channels import ChannelView
    from l2custody.custody.funding.session import FundingSession
    from l2custody.store import Store
    from l2custody.wallet.service import Wallet

#: The audit log's actor for the flows run from the command line.
ACTOR = "funding"

NodeResolver = Callable[[str], NodeBackend]


def _quiet(_message: str) -> None:
    pass


class Custody:
    """The wallet, the registered nodes (``registry``; or any ``resolve`` by name), a
    progress callback and the actor written to the audit log.

    Give the ``wallet``, or ``store`` + ``open_wallet`` to open it on first use: a
    command then reaches its nodes (and starts asking them) before it pays for the
    wallet. ``close()`` releases the backends it opened, and the wallet (or the store)
    too when it owns it.
    """

    def __init__(
        self,
        wallet: Wallet | None,
        resolve: NodeResolver,
        progress: Callable[[str], None] = _quiet,
        actor: str = ACTOR,
        owns_wallet: bool = False,
        registry: NodeRegistry | None = None,
        *,
        store: Store | None = None,
        open_wallet: Callable[[], Wallet] | None = None,
    ) -> None:
        if wallet is None and (store is None or open_wallet is None):
            raise ValueError("Custody needs a wallet, or a store and a way to open the wallet")
        self._wallet = wallet
        self._store = store if store is not None else wallet.store  # type: ignore[union-attr]
        self._open_wallet = open_wallet
        self.resolve = resolve
        self.progress = progress
        self.actor = actor
        self.owns_wallet = owns_wallet
        self.registry = registry
        self._nodes: dict[str, NodeBackend] = {}

    @property
    def wallet(self) -> Wallet:
        if self._wallet is None:
            assert self._open_wallet is not None
            self._wallet = self._open_wallet()
        return self._wallet

    @property
    def store(self) -> Store:
        return self._store

    @property
    def margin(self) -> int:
        """Blocks before the peer may forget a negotiated channel at which we stop broadcasting."""
        return self.wallet.config.sessions.deadline_margin_blocks

    # --- nodes -------------------------------------------------------------------------------
    def node(self, name: str) -> NodeBackend:
        """The node ``name``, opened once (NodeNotFound names the known ones)."""
        if name not in self._nodes:
            self._nodes[name] = self.resolve(name)
        return self._nodes[name]

    def node_names(self) -> list[str]:
        """Every registered node's name (none without a registry)."""
        return [r.name for r in self.registry.all()] if self.registry is not None else []

    def nodes(self, name: str | None = None) -> list[NodeBackend]:
        """One node by name, or every registered node (UsageError when there is none)."""
        from l2custody.errors import UsageError

        if name is not None:
            return [self.node(name)]
        names = self.node_names()
        if not names:
            raise UsageError("no nodes registered yet: add one with `l2custody node add NAME --lnd ...`")
        return [self.node(n) for n in names]

    def locate(self, ref: str, node: str | None = None) -> tuple[NodeBackend, ChannelView]:
        """The node and view of channel ``ref`` (channel point or short id), searched on
        ``node`` or on every registered node."""
        from l2custody.custody.channels import find_view, parse_channel_ref

        parse_channel_ref(ref)  # a malformed reference fails before any node is asked
        view = find_view(self.channel_views(node), ref)
        return self.node(view.node), view

    def channel_views(self, node: str | None = None, *, include_closed: bool = True) -> list[ChannelView]:
        """The channels of ``node`` (or of every registered node) as views. The nodes are
        asked first; the wallet and the store are read while they answer."""
        from l2custody.custody.channels import channel_joiner, read_channels

        answer = read_channels(self.nodes(node), include_closed=include_closed)
        join = channel_joiner(self.wallet)
        return join(answer())

    # --- the audit log -----------------------------------------------------------------------
    def audit(self, action: str, subject: str, details: dict[str, Any] | None = None) -> None:
        self.store.audit(self.actor, action, subject, details or {})

    def save(
        self, session: FundingSession, action: str | None = None, details: dict[str, Any] | None = None, **extra: Any
    ) -> FundingSession:
        """Persist a funding session (and an audit entry) in one store transaction."""
        from l2custody.custody.funding.records import save_session

        with self.store.transaction():
            save_session(self.store, session, **extra)
            if action:
                self.audit(action, session.id, details)
        return session

    # --- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        for backend in self._nodes.values():
            try:
                backend.close()
            except Exception:  # closing is best effort; the process may be exiting
                pass
        self._nodes.clear()
        if self.owns_wallet:
            if self._wallet is not None:
                self._wallet.close()  # closes its store
            else:
                self._store.close()

    def __enter__(self) -> Custody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def custody_for(
    wallet: Wallet, *, progress: Callable[[str], None] = _quiet, actor: str = ACTOR, owns_wallet: bool = False
) -> Custody:
    """The context over an open ``wallet`` and the nodes registered in its store."""
    from l2custody.backends.node_registry import NodeRegistry

    registry = NodeRegistry(wallet.store, wallet.config.data_dir)
    return Custody(wallet, registry.backend, progress, actor, owns_wallet, registry)


@contextmanager
def open_custody(
    config: Config | Path | str | None = None,
    *,
    chain: ChainSource | None = None,
    progress: Callable[[str], None] = _quiet,
    lazy: bool = False,
) -> Iterator[Custody]:
    """The wallet of ``config`` (a loaded Config, or a config path; WalletNotFound if no
    wallet was created) and its node registry; everything is closed on exit. Opens the
    store; touches no network. ``lazy``: the wallet is opened when first used (a read
    command asks its nodes first, then opens the wallet while they answer)."""
    from l2custody.backends.node_registry import NodeRegistry
    from l2custody.config import Config, load_config
    from l2custody.store import Store

    loaded = config if isinstance(config, Config) else load_config(config)
    store = Store.open(loaded.store_path)

    def open_wallet() -> Wallet:
        from l2custody.wallet.service import Wallet

        return Wallet.over(loaded, store, chain=chain)

    try:
        if lazy:  # the wallet must exist (and be this network's) before anything else happens
            from l2custody.wallet.record import wallet_record

            wallet_record(loaded, store)
        open_wallet_now = open_wallet() if not lazy else None
    except BaseException:
        store.close()
        raise
    registry = NodeRegistry(store, loaded.data_dir)
    custody = Custody(
        open_wallet_now, registry.backend, progress, ACTOR, True, registry, store=store, open_wallet=open_wallet
    )
    try:
        yield custody
    finally:
        custody.close()
