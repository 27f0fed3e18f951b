"""The wallet plus the registered nodes, opened once for one command.

``channel list/show/close``, ``sweep`` and ``node guard`` all need the
multisig wallet (to recognise and issue addresses, to verify on chain) and
one or more node backends. :func:`open_custody` opens both from the config;
backends are built lazily (no network until the first call) and closed with
the context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from l2custody.backends.base import NodeBackend

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.backends.node_registry import NodeRegistry
    from l2custody.chain.base import ChainSource
    from l2custody.config import Config
    from l2custody.custody.channels import ChannelView
    from l2custody.wallet.service import Wallet


class Custody:
    """The wallet and the node registry of one store."""

    def __init__(self, wallet: Wallet, registry: NodeRegistry) -> None:
        self.wallet = wallet
        self.registry = registry
        self._backends: dict[str, NodeBackend] = {}

    def backend(self, name: str) -> NodeBackend:
        """The registered node ``name`` (NodeNotFound names the known ones)."""
        if name not in self._backends:
            self._backends[name] = self.registry.backend(name)
        return self._backends[name]

    def backends(self, name: str | None = None) -> list[NodeBackend]:
        """One node by name, or every registered node (UsageError when there is none)."""
        from l2custody.errors import UsageError

        if name is not None:
            return [self.backend(name)]
        names = [r.name for r in self.registry.all()]
        if not names:
            raise UsageError("no nodes registered yet: add one with `l2custody node add NAME --lnd ...`")
        return [self.backend(n) for n in names]

    def locate(self, ref: str, node: str | None = None) -> tuple[NodeBackend, ChannelView]:
        """The node and view of channel ``ref`` (channel point or short id), searched on
        ``node`` or on every registered node."""
        from l2custody.custody.channels import find_view, list_channel_views, parse_channel_ref

        parse_channel_ref(ref)  # a malformed reference fails before any node is asked
        backends = self.backends(node)
        view = find_view(list_channel_views(self.wallet, backends), ref)
        return self.backend(view.node), view

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
        self.wallet.close()


@contextmanager
def open_custody(config: Config, chain: ChainSource | None = None) -> Iterator[Custody]:
    """The wallet of ``config`` (WalletNotFound if none was created) and its node registry."""
    from l2custody.backends.node_registry import NodeRegistry
    from l2custody.wallet.service import Wallet

    wallet = Wallet.open(config, chain=chain)
    custody = Custody(wallet, NodeRegistry(wallet.store, config.data_dir))
    try:
        yield custody
    finally:
        custody.close()
