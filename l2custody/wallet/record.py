"""Which wallet of a store a config means, checked before anything else is opened."""

from __future__ import annotations

from typing import TYPE_CHECKING

from l2custody.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.config import Config
    from l2custody.store import Store, WalletRecord


def wallet_record(config: Config, store: Store, name: str | None = None) -> WalletRecord:
    """The wallet ``name`` (the only one by default) of ``config``'s open ``store``.
    WalletNotFound if none was created; StoreError if it is another network's."""
    record = store.wallet(name)
    if record.network != config.embit_network:
        raise StoreError(
            f"the store {config.store_path} holds a {record.network} wallet but {config.path} is for "
            f"{config.network}; use the config the wallet was created with"
        )
    return record
