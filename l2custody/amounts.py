"""Amounts: integer satoshis, parsed from what people type at the edge."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from l2custody.errors import AmountError

#: The smallest output l2custody creates or expects (546 sat: the P2PKH dust limit, above every
#: segwit output type's), used by sweeps and close verification alike.
DUST_SAT = 546

SATS_PER_BTC = 100_000_000
MAX_MONEY = 21_000_000 * SATS_PER_BTC

_AMOUNT_RE = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*(sat|sats|btc|msat)?\s*$", re.I)


def parse_sats(text: str | int) -> int:
    """Parse ``150000``, ``150000sat``, ``0.0015btc`` or ``1500000msat`` into sats.

    Raises AmountError for anything else: negative, fractional satoshis,
    more than 21M BTC, or unknown units.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise AmountError(
            f"cannot read amount {text!r:.40}: write satoshis (150000 or 150000sat) or bitcoin (0.0015btc) as text"
        )
    if isinstance(text, int):
        value = text
    else:
        m = _AMOUNT_RE.match(text)
        if not m:
            raise AmountError(
                f"cannot read amount {text!r}: write satoshis (150000 or 150000sat) or bitcoin (0.0015btc)"
            )
        written, unit = m.group(1), (m.group(2) or "sat").lower()
        _check_commas(text, written, unit)
        number = written.replace("_", "").replace(",", "")
        try:
            dec = Decimal(number)
        except InvalidOperation as exc:  # pragma: no cover - regex guards this
            raise AmountError(f"cannot read amount {text!r}") from exc
        if unit == "btc":
            dec = dec * SATS_PER_BTC
        elif unit == "msat":
            if dec % 1000:
                raise AmountError(f"{text!r} is not a whole number of satoshis")
            dec = dec / 1000
        if dec != dec.to_integral_value():
            raise AmountError(f"{text!r} is not a whole number of satoshis (1 sat = 0.00000001 btc)")
        value = int(dec)
    if value < 0:
        raise AmountError(f"amount must not be negative, got {value}")
    if value > MAX_MONEY:
        raise AmountError(f"{value} sat is more than 21 million bitcoin; check the unit")
    return value


_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")


def _check_commas(text: str, written: str, unit: str) -> None:
    """A comma is only ever thousands grouping of a whole satoshi amount (``1,500,000``):
    ``0,5btc`` is someone's decimal comma, and reading it as 5 BTC is the one thing
    an amount parser must never do."""
    if "," not in written:
        return
    if unit == "btc" or "." in written:
        raise AmountError(
            f"cannot read amount {text!r}: use a dot for decimals and no thousands separators "
            "in bitcoin amounts (0.5btc)"
        )
    if not _GROUPED.fullmatch(written):
        raise AmountError(
            f"cannot read amount {text!r}: commas may only group thousands (1,500,000); "
            "for decimals write bitcoin with a dot (0.015btc)"
        )


def format_sats(sats: int) -> str:
    """``1234567`` -> ``'1,234,567 sat'``."""
    return f"{sats:,} sat"


def format_btc(sats: int) -> str:
    sign = "-" if sats < 0 else ""
    sats = abs(sats)
    return f"{sign}{sats // SATS_PER_BTC}.{sats % SATS_PER_BTC:08d} BTC"
