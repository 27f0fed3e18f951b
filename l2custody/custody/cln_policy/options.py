"""The plugin's lightningd options, read and validated once at ``init``.

=============================  ==========  ==============================================
option                         default     meaning
=============================  ==========  ==============================================
``l2custody-config``           (empty)     l2custody config file; empty: $L2CUSTODY_CONFIG
                                           or ~/.config/l2custody/config.toml
``l2custody-policy``           enforce     ``enforce``: refuse what the rules refuse;
                                           ``audit``: only log and audit (never refuse)
``l2custody-node``             cln         this node's name in l2custody (labels, audit)
``l2custody-min-channel``      0           inbound channels below this are rejected
``l2custody-max-channel``      (none)      inbound channels above this are rejected
``l2custody-allowed-peer``     (any)       only these peers may open channels (repeatable)
``l2custody-denied-peer``      (none)      these peers may not open channels (repeatable)
``l2custody-allow-private``    true        accept unannounced inbound channels
=============================  ==========  ==============================================

Amounts take ``150000``, ``150000sat``, ``0.0015btc``. Every bad value is a
UsageError naming the option; the plugin then exits at init (as
an ``important-plugin``, lightningd stops with that message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from l2custody.custody.guard import GuardPolicy
from l2custody.errors import AmountError, UsageError

MODE_ENFORCE = "enforce"
MODE_AUDIT = "audit"
MODES = (MODE_ENFORCE, MODE_AUDIT)

#: name -> (default, type, multi, description); the plugin registers exactly these.
OPTIONS: dict[str, tuple[Any, str, bool, str]] = {
    "l2custody-config": (
        "",
        "string",
        False,
        "l2custody config file (default: $L2CUSTODY_CONFIG or ~/.config/l2custody/config.toml)",
    ),
    "l2custody-policy": (
        MODE_ENFORCE,
        "string",
        False,
        "enforce (refuse what the custody rules refuse) or audit (log only, never refuse)",
    ),
    "l2custody-node": ("cln", "string", False, "this node's name in l2custody (address labels, audit log)"),
    "l2custody-min-channel": ("0", "string", False, "reject inbound channels smaller than this (e.g. 100000sat)"),
    "l2custody-max-channel": ("", "string", False, "reject inbound channels larger than this (empty: no limit)"),
    "l2custody-allowed-peer": (None, "string", True, "only these node ids may open channels to us (repeatable)"),
    "l2custody-denied-peer": (None, "string", True, "these node ids may not open channels to us (repeatable)"),
    "l2custody-allow-private": (True, "bool", False, "accept unannounced (private) inbound channels"),
}


@dataclass(frozen=True)
class PluginOptions:
    """The validated options."""

    config_path: str | None
    mode: str
    node: str
    inbound: GuardPolicy

    @property
    def enforce(self) -> bool:
        return self.mode == MODE_ENFORCE

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> PluginOptions:
        """From lightningd's ``init`` options (missing ones take their defaults)."""

        def get(name: str) -> Any:
            value = raw.get(name)
            return OPTIONS[name][0] if value is None else value

        mode = str(get("l2custody-policy")).strip().lower()
        if mode not in MODES:
            raise UsageError(f"l2custody-policy={get('l2custody-policy')!r}: use enforce or audit")
        node = str(get("l2custody-node")).strip()
        if not node:
            raise UsageError("l2custody-node must not be empty")
        min_sat = _sats("l2custody-min-channel", get("l2custody-min-channel")) or 0
        max_sat = _sats("l2custody-max-channel", get("l2custody-max-channel"))
        if max_sat is not None and max_sat < max(min_sat, 1):
            raise UsageError(
                f"l2custody-max-channel ({max_sat} sat) must be positive and at least "
                f"l2custody-min-channel ({min_sat} sat)"
            )
        allow_private = get("l2custody-allow-private")
        if isinstance(allow_private, str):
            allow_private = allow_private.strip().lower() in ("true", "1", "yes", "on")
        try:
            inbound = GuardPolicy.build(
                min_channel_sat=min_sat,
                max_channel_sat=max_sat,
                allowed_peers=_list(get("l2custody-allowed-peer")),
                denied_peers=_list(get("l2custody-denied-peer")),
                allow_private=bool(allow_private),
            )
        except UsageError as exc:  # a bad peer id: name the options
            raise UsageError(f"l2custody-allowed-peer/l2custody-denied-peer: {exc.message}") from None
        config = str(get("l2custody-config")).strip()
        return cls(config or None, mode, node, inbound)


def _list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _sats(name: str, value: Any) -> int | None:
    from l2custody.amounts import parse_sats

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_sats(value if isinstance(value, int) else str(value).strip())
    except AmountError as exc:
        raise UsageError(f"{name}={value!r}: {exc.message}") from None
