"""Amounts are integer satoshis; people may type sats or bitcoin."""

import pytest

from l2custody.amounts import format_btc, format_sats, parse_sats
from l2custody.errors import AmountError


@pytest.mark.parametrize(
    "text,sats",
    [
        ("150000", 150_000),
        ("150000sat", 150_000),
        ("150_000 sats", 150_000),
        ("0.0015btc", 150_000),
        ("1BTC", 100_000_000),
        ("1500000msat", 1_500),
        (42, 42),
    ],
)
def test_amounts_people_type_are_read_as_satoshis(text, sats):
    assert parse_sats(text) == sats


@pytest.mark.parametrize(
    "text,message",
    [
        ("1.5", "whole number of satoshis"),
        ("0.000000001btc", "whole number"),
        ("1500msat", "whole number"),
        ("-5", "cannot read"),
        ("ten", "cannot read"),
        ("22000000btc", "21 million"),
        ("5 eur", "cannot read"),
    ],
)
def test_amounts_that_are_not_whole_satoshis_are_refused_with_the_reason(text, message):
    with pytest.raises(AmountError, match=message):
        parse_sats(text)


def test_amounts_render_for_people():
    assert format_sats(1_234_567) == "1,234,567 sat"
    assert format_btc(150_000) == "0.00150000 BTC"
