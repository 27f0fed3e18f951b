"""``node macaroon NODE --out FILE``: macaroons whose requests lnd hands to the enforcer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import Capability, NodeBackend
from l2custody.custody.enforce.service import ACTOR, CAVEAT, audit_subject
from l2custody.errors import ConfigError, NotSupported, UsageError
from l2custody.private_files import write_private_file
from l2custody.user_paths import PathKind, path_kind, user_path, why

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.service import Wallet

#: What an operator or app gets unless told otherwise: everything but minting macaroons
#: (macaroon:*) and raw signing with the node's keys (signer:generate).
DEFAULT_PERMISSIONS = tuple(
    f"{entity}:{action}"
    for entity in ("info", "onchain", "offchain", "address", "message", "peers", "invoices")
    for action in ("read", "write")
) + ("signer:read",)
_HOLDER = re.compile(r"^[A-Za-z0-9._-]{0,64}$")


@dataclass(frozen=True)
class BakedMacaroon:
    node: str
    path: str
    caveat: str
    holder: str
    permissions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "permissions": list(self.permissions)}


def bake(
    backend: NodeBackend, wallet: Wallet, out: Path, permissions: Sequence[str] | None, holder: str
) -> BakedMacaroon:
    """Bake, restrict with the ``lnd-custom l2custody <holder>`` caveat, write ``out`` 0600, audit."""
    if not backend.supports(Capability.RPC_MIDDLEWARE):
        raise NotSupported(f"node {backend.name!r} ({backend.kind}) has no RPC middleware to enforce custody with")
    if not _HOLDER.match(holder):
        raise UsageError(f"--holder {holder!r}: use up to 64 letters, digits, '.', '_' or '-'")
    perms = tuple(permissions or DEFAULT_PERMISSIONS)
    out = user_path(out, "--out", UsageError)
    if path_kind(out, "--out", UsageError) is not PathKind.MISSING:
        raise UsageError(f"{out} exists; choose another --out (l2custody never overwrites a macaroon)")
    middleware = backend.rpc_middleware()
    try:
        raw = middleware.bake_macaroon(perms, (CAVEAT, holder))
    finally:
        middleware.close()
    try:
        write_private_file(out, raw, exclusive=True, durable=True)
    except FileExistsError:
        raise UsageError(f"{out} exists; choose another --out (l2custody never overwrites a macaroon)") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {why(exc)}") from None
    baked = BakedMacaroon(backend.name, str(out), CAVEAT, holder, perms)
    wallet.store.audit(ACTOR, "macaroon-baked", audit_subject(backend.name), baked.to_dict())
    return baked
