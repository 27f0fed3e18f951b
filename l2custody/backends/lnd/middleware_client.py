"""The lnd side of ``node enforce``: permissions, wallet addresses, caveat macaroons, the stream.

:class:`LndMiddlewareClient` is what ``LndBackend.rpc_middleware()`` returns
(``backends.rpc_calls.RpcMiddleware``); the stream itself and the decoding
live in ``middleware.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.backends.lnd.macaroon import custom_caveat, parse_macaroon
from l2custody.backends.lnd.middleware import decode, intercept_calls, sensitive_methods
from l2custody.backends.rpc_calls import CallVerdict, Judge, RpcCall
from l2custody.errors import ConfigError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.backends.lnd.backend import LndBackend

_INTERNAL_ERROR = "refused by l2custody: its custody check failed (see the `node enforce` log); nothing was done"


def _caveat_condition(raw: bytes, name: str) -> str | None:
    """The condition of custom caveat ``name`` in the caller's macaroon (None: absent or unreadable)."""
    try:
        return parse_macaroon(raw).custom_caveat(name) if raw else None
    except ConfigError:
        return None


class LndMiddlewareClient:
    """``RpcMiddleware`` for one lnd over its own connection; ``macaroon`` replaces the node's
    registered one (the enforcer must register with an unencumbered macaroon holding
    macaroon:write)."""

    def __init__(self, backend: LndBackend, macaroon: Path | None = None) -> None:
        # always a gRPC channel of its own: closing it after a stream failure must not cut
        # the node's other streams (the enforcer and the auditor reconnect independently)
        creds = backend.creds if macaroon is None else replace(backend.creds, macaroon_path=Path(macaroon))
        self.backend = type(backend)(backend.name, creds)

    def close(self) -> None:
        self.backend.close()

    def _modules(self) -> tuple[dict[str, Any], Any]:
        ln, stub, wk, _ = self.backend._stubs()
        return {"ln": ln, "wk": wk}, stub

    def sensitive_methods(self) -> frozenset[str]:
        modules, stub = self._modules()
        ln = modules["ln"]
        try:
            perms = stub.ListPermissions(ln.ListPermissionsRequest(), timeout=self.backend.creds.timeout)
        except Exception as exc:
            raise self.backend.translate(exc, "list method permissions") from None
        table = {
            method: frozenset((p.entity, p.action) for p in entry.permissions)
            for method, entry in perms.method_permissions.items()
        }
        return sensitive_methods(table)

    def wallet_addresses(self) -> frozenset[str]:
        modules, _ = self._modules()
        _, _, wk, wkstub = self.backend._stubs()
        try:
            resp = wkstub.ListAddresses(
                wk.ListAddressesRequest(account_name="default"), timeout=self.backend.creds.timeout
            )
        except Exception as exc:
            raise self.backend.translate(exc, "list the node wallet's addresses") from None
        return frozenset(a.address for acct in resp.account_with_addresses for a in acct.addresses)

    def bake_macaroon(self, permissions: Sequence[str], caveat: tuple[str, str]) -> bytes:
        modules, stub = self._modules()
        ln = modules["ln"]
        perms = []
        for text in permissions:
            entity, _, action = text.partition(":")
            if not entity or not action:
                raise UsageError(f"permission {text!r} is not ENTITY:ACTION (e.g. onchain:write)")
            perms.append(ln.MacaroonPermission(entity=entity, action=action))
        try:
            baked = stub.BakeMacaroon(ln.BakeMacaroonRequest(permissions=perms), timeout=self.backend.creds.timeout)
        except Exception as exc:
            raise self.backend.translate(exc, "bake a macaroon") from None
        name, condition = caveat
        return (
            parse_macaroon(bytes.fromhex(baked.macaroon)).with_first_party(custom_caveat(name, condition)).serialize()
        )

    def intercept(
        self,
        name: str,
        caveat_name: str | None,
        judge: Judge,
        stop: threading.Event,
        *,
        own_caveat: str,
        on_registered: Callable[[], None] | None = None,
    ) -> None:
        modules, stub = self._modules()
        node = self.backend.name
        # lnd's permission table is read only once we are registered: with
        # rpcmiddleware.addmandatory, lnd answers nothing (ListPermissions neither) before.
        # Until it is loaded, the enforcer refuses what it cannot class and the auditor
        # lets everything through unrecorded (a window of one round trip).
        table: dict[str, frozenset[str]] = {}

        def load_permissions() -> None:
            while not stop.is_set():
                try:
                    table["sensitive"] = self.sensitive_methods()
                except Exception:  # lnd restarting: the stream fails too, and we start over
                    stop.wait(0.5)
                    continue
                if on_registered is not None:
                    on_registered()  # registered and able to class every method
                return

        def registered() -> None:
            threading.Thread(target=load_permissions, name=f"permissions-{node}", daemon=True).start()

        def answer(raw: Any) -> CallVerdict:
            try:
                if caveat_name is not None:
                    caveat: str | None = raw.custom_caveat_condition
                else:
                    caveat = _caveat_condition(bytes(raw.raw_macaroon), own_caveat)
                sensitive = table.get("sensitive", None if caveat_name is not None else frozenset())
                call: RpcCall = decode(node, raw, modules, sensitive, caveat)
                return judge(call)
            except Exception as exc:  # fail closed
                return CallVerdict.refuse("check-failed", f"{_INTERNAL_ERROR} ({type(exc).__name__})")

        intercept_calls(
            node, modules, stub, self.backend.translate, (name, caveat_name), answer, stop, on_registered=registered
        )
