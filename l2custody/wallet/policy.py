"""The operator's spending policy: where multisig funds may go and what fee they may pay.

Our own descriptor's addresses are always allowed (change, consolidation).
Any other destination must be listed in ``[policy] allowed_destinations``
of the config, unless ``allow_any_destination = true``; fees are capped by
``max_fee_sat`` (absolute) and ``max_fee_rate`` (sat/vB). Every refusal
raises PolicyViolation naming the output and the config key that would
allow it; nothing has been signed at that point.

Channel funding outputs are not matched against the policy: the custody
layer passes them to ``verify(..., expected_outputs=...)`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from l2custody.amounts import format_sats
from l2custody.errors import ConfigError, PolicyViolation
from l2custody.numbers import is_positive
from l2custody.wallet.addresses import address_to_script

#: Defaults agree with config.PolicyConfig.
DEFAULT_MAX_FEE_SAT = 100_000
DEFAULT_MAX_FEE_RATE = 200.0

#: Config keys (section ``[policy]``) quoted in messages.
KEY_ALLOWED = "[policy] allowed_destinations"
KEY_ALLOW_ANY = "[policy] allow_any_destination"
KEY_MAX_FEE = "[policy] max_fee_sat"
KEY_MAX_RATE = "[policy] max_fee_rate"


@dataclass(frozen=True)
class Policy:
    """Where funds may go besides our own descriptor, and the fee caps. Pure data."""

    allowed_destinations: frozenset[str] = field(default_factory=frozenset)
    max_fee_sat: int | None = DEFAULT_MAX_FEE_SAT
    max_fee_rate: float | None = DEFAULT_MAX_FEE_RATE
    allow_any: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_destinations", frozenset(a.strip() for a in self.allowed_destinations))
        if self.max_fee_sat is not None and self.max_fee_sat < 0:
            raise ConfigError(f"{KEY_MAX_FEE} must not be negative")
        if self.max_fee_rate is not None and not is_positive(self.max_fee_rate):
            raise ConfigError(f"{KEY_MAX_RATE} must be positive")

    @classmethod
    def from_config(cls, cfg: Any) -> Policy:
        """From a config.PolicyConfig (or anything with the same attribute names)."""
        return cls(
            allowed_destinations=frozenset(getattr(cfg, "allowed_destinations", ()) or ()),
            max_fee_sat=getattr(cfg, "max_fee_sat", DEFAULT_MAX_FEE_SAT),
            max_fee_rate=getattr(cfg, "max_fee_rate", DEFAULT_MAX_FEE_RATE),
            allow_any=bool(getattr(cfg, "allow_any_destination", getattr(cfg, "allow_any", False))),
        )

    def with_destinations(self, addresses: Iterable[str]) -> Policy:
        """A copy that also allows ``addresses`` (e.g. for one explicit operator command)."""
        return Policy(
            self.allowed_destinations | frozenset(addresses), self.max_fee_sat, self.max_fee_rate, self.allow_any
        )

    def allowed_scripts(self, network: str) -> set[bytes]:
        """The scripts of the allowed destinations; NetworkMismatch names a wrong-network entry."""
        scripts = set()
        for address in sorted(self.allowed_destinations):
            try:
                scripts.add(address_to_script(address, network))
            except Exception as exc:
                msg = getattr(exc, "message", str(exc))
                raise type(exc)(f"{KEY_ALLOWED} entry {address}: {msg}") from exc
        return scripts

    def check_destination(
        self, index: int, address: str | None, value: int, script_pubkey: bytes, network: str
    ) -> None:
        """Allow or refuse a foreign output; PolicyViolation names it and how to allow it."""
        if self.allow_any:
            return
        if bytes(script_pubkey) in self.allowed_scripts(network):
            return
        where = address or f"script {bytes(script_pubkey).hex()}"
        raise PolicyViolation(
            f"output {index} pays {format_sats(value)} to {where}, which is not this wallet's "
            f"own address and not an allowed destination; refusing. To allow it, add the address "
            f"to {KEY_ALLOWED} in the config (or set {KEY_ALLOW_ANY} = true)"
        )

    def check_fee(self, fee: int, fee_rate: float) -> None:
        """Refuse a fee above ``max_fee_sat`` or a fee rate above ``max_fee_rate``."""
        if self.max_fee_sat is not None and fee > self.max_fee_sat:
            raise PolicyViolation(
                f"fee {format_sats(fee)} is above the cap of {format_sats(self.max_fee_sat)} "
                f"({KEY_MAX_FEE}); lower the fee rate, or raise the cap if this is intended"
            )
        if self.max_fee_rate is not None and fee_rate > self.max_fee_rate + 1e-9:
            raise PolicyViolation(
                f"fee rate {fee_rate:.2f} sat/vB is above the cap of {self.max_fee_rate:g} sat/vB "
                f"({KEY_MAX_RATE}); lower the fee rate, or raise the cap if this is intended"
            )
