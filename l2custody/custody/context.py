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
from dataclasses import dataclass, field
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


@dataclass
class Custody:
    """The wallet, the registered nodes (``registry``; or any ``resolve`` by name), a
    progress callback and the actor written to the audit log.

    ``close()`` releases the backends it opened, and the wallet too when it owns it.
    """

    wallet: Wallet
    resolve: NodeResolver
    progress: Callable[[str], None] = _quiet
    actor: str = ACTOR
    owns_wallet: bool = False
    registry: NodeRegistry | None = None
    _nodes: dict[str, NodeBackend] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.wallet.store

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
        from l2custody.custody.channels import find_view, list_channel_views, parse_channel_ref

        parse_channel_ref(ref)  # a malformed reference fails before any node is asked
        view = find_view(list_channel_views(self.wallet, self.nodes(node)), ref)
        return self.node(view.node), view

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
            self.wallet.close()

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
) -> Iterator[Custody]:
    """The wallet of ``config`` (a loaded Config, or a config path; WalletNotFound if no
    wallet was created) and its node registry; everything is closed on exit. Opens the
    store; touches no network."""
    from l2custody.config import Config, load_config
    from l2custody.wallet.service import Wallet

    loaded = config if isinstance(config, Config) else load_config(config)
    custody = custody_for(Wallet.open(loaded, chain=chain), progress=progress, owns_wallet=True)
    try:
        yield custody
    finally:
        custody.close()
