"""The spending policy on its own: destinations, fee caps, and the config it comes from."""

from __future__ import annotations

import pytest

from l2custody.config import PolicyConfig
from l2custody.errors import ConfigError, NetworkMismatch, PolicyViolation
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.policy import DEFAULT_MAX_FEE_RATE, DEFAULT_MAX_FEE_SAT, Policy
from tests.support.wallet import WALLET, outside_address

DEST = outside_address()


def test_defaults_refuse_foreign_destinations_and_cap_fees_like_the_config() -> None:
    p = Policy()
    assert not p.allow_any and not p.allowed_destinations
    assert (p.max_fee_sat, p.max_fee_rate) == (PolicyConfig().max_fee_sat, PolicyConfig().max_fee_rate)
    assert (DEFAULT_MAX_FEE_SAT, DEFAULT_MAX_FEE_RATE) == (100_000, 200.0)


def test_from_config_reads_every_field() -> None:
    cfg = PolicyConfig(allowed_destinations=(DEST,), max_fee_sat=5_000, max_fee_rate=12.5, allow_any_destination=True)
    p = Policy.from_config(cfg)
    assert p == Policy(frozenset({DEST}), 5_000, 12.5, True)


def test_destination_check_compares_scripts_not_spelling() -> None:
    p = Policy(allowed_destinations=frozenset({DEST.upper()}))
    p.check_destination(0, DEST, 1_000, address_to_script(DEST, "regtest"), "regtest")


def test_refusal_names_the_output_and_the_config_key() -> None:
    other = WALLET["regtest_receive"][3]
    with pytest.raises(PolicyViolation, match=rf"output 2 pays 1,500 sat to {other}.*\[policy\] allowed_destinations"):
        Policy().check_destination(2, other, 1_500, address_to_script(other, "regtest"), "regtest")


def test_with_destinations_adds_to_a_copy() -> None:
    base = Policy()
    extended = base.with_destinations([DEST])
    assert DEST in extended.allowed_destinations and not base.allowed_destinations


def test_wrong_network_entries_are_named() -> None:
    with pytest.raises(NetworkMismatch, match="allowed_destinations entry"):
        Policy(allowed_destinations=frozenset({WALLET["test_receive"][0]})).allowed_scripts("regtest")


def test_fee_caps_are_inclusive_limits() -> None:
    p = Policy(max_fee_sat=1_000, max_fee_rate=10.0)
    p.check_fee(1_000, 10.0)
    with pytest.raises(PolicyViolation, match="max_fee_sat"):
        p.check_fee(1_001, 1.0)
    with pytest.raises(PolicyViolation, match="max_fee_rate"):
        p.check_fee(10, 10.01)
    Policy(max_fee_sat=None, max_fee_rate=None).check_fee(10**8, 10_000.0)


def test_nonsense_caps_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="max_fee_sat"):
        Policy(max_fee_sat=-1)
    with pytest.raises(ConfigError, match="max_fee_rate"):
        Policy(max_fee_rate=0)
