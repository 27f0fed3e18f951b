"""Batch files as a careless operator or another tool writes them (issue 11, classes 6
and 14): extra CSV values, unknown columns, JSON amounts of the wrong type, duplicate
members, a byte-order mark. Whatever the file holds, ``read_batch`` gives channel
requests or one typed error naming the file and the row once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2custody import strict_json
from l2custody.amounts import parse_sats
from l2custody.custody.funding.requests import read_batch
from l2custody.errors import AmountError, L2CustodyError, UsageError

settings.register_profile("l2custody", max_examples=300, deadline=None, derandomize=True)
settings.load_profile("l2custody")

PEER = "02" + "ab" * 32


def batch(tmp_path: Path, text: str | bytes, name: str = "b.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_csv_row_with_more_values_than_columns_is_refused(tmp_path: Path) -> None:
    f = batch(tmp_path, f"node,peer,amount\nwest,{PEER},1,000,000\n")
    with pytest.raises(UsageError, match=r"row 1: 5 values for 3 columns"):
        read_batch(f)


def test_an_unknown_column_is_refused_not_ignored(tmp_path: Path) -> None:
    f = batch(tmp_path, f"node,peer,amount,privat\nwest,{PEER},500000,yes\n")
    with pytest.raises(UsageError, match="unknown column 'privat'"):
        read_batch(f)
    f = batch(tmp_path, json.dumps([{"node": "west", "peer": PEER, "amount": 500000, "prvate": True}]), "b.json")
    with pytest.raises(UsageError, match="row 1: unknown column 'prvate'"):
        read_batch(f)


@pytest.mark.parametrize(
    ("amount", "fragment"),
    [
        (1.5, "float"),
        (None, "amount is missing"),
        (True, "bool"),
        ([1], "list"),
        ({"btc": 1}, "dict"),
        (1e300, "float"),
    ],
)
def test_a_json_amount_is_text_or_whole_satoshis(tmp_path: Path, amount: object, fragment: str) -> None:
    f = batch(tmp_path, json.dumps([{"node": "west", "peer": PEER, "amount": amount}]), "b.json")
    with pytest.raises(UsageError, match=fragment):
        read_batch(f)


def test_json_names_and_peers_must_be_text(tmp_path: Path) -> None:
    f = batch(tmp_path, json.dumps([{"node": ["west"], "peer": PEER, "amount": 500000}]), "b.json")
    with pytest.raises(UsageError, match="node must be text"):
        read_batch(f)


def test_a_member_given_twice_is_refused(tmp_path: Path) -> None:
    text = f'[{{"node": "west", "peer": "{PEER}", "amount": 1000, "amount": 100000000}}]'
    with pytest.raises(UsageError, match="'amount' appears twice"):
        read_batch(batch(tmp_path, text, "b.json"))


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    f = batch(tmp_path, b"\xef\xbb\xbf" + f"node,peer,amount\nwest,{PEER},500000\n".encode())
    [request] = read_batch(f)
    assert request.node == "west" and request.amount_sat == 500_000


def test_the_file_and_row_are_said_once(tmp_path: Path) -> None:
    f = batch(tmp_path, f"node,peer,amount,private\nwest,{PEER},500000,maybe\n")
    with pytest.raises(UsageError) as raised:
        read_batch(f)
    assert raised.value.message.count("row 1") == 1 and raised.value.message.count("b.csv") == 1


def test_parse_sats_takes_text_or_an_int_only() -> None:
    for value in (1.5, None, True, b"100", [100]):
        with pytest.raises(AmountError):
            parse_sats(value)  # type: ignore[arg-type]


# --- generated files --------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ROW = st.dictionaries(
    st.sampled_from(["node", "peer", "amount", "private", "push", "other"]),
    JSON_VALUES | st.sampled_from([PEER, "west", "0.01btc", "1,000", "yes"]),
    max_size=6,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ROW, max_size=4) | JSON_VALUES)
def test_any_json_batch_gives_requests_or_a_typed_error(tmp_path: Path, data: object) -> None:
    f = batch(tmp_path, json.dumps(data), "b.json")
    try:
        read_batch(f)
    except L2CustodyError:
        pass


CSV_CELLS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) | st.sampled_from(
    [PEER, "west", "500000", "0.01btc", '"1,0"', "yes", ""]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from(["node", "peer", "amount", "private", "push", "x", ""]), max_size=6),
    st.lists(st.lists(CSV_CELLS, max_size=7), max_size=4),
)
def test_any_csv_batch_gives_requests_or_a_typed_error(
    tmp_path: Path, header: list[str], rows: list[list[str]]
) -> None:
    text = "\n".join(",".join(r) for r in [header, *rows])
    try:
        read_batch(batch(tmp_path, text))
    except L2CustodyError:
        pass


@given(st.text(max_size=200))
def test_strict_json_gives_a_value_or_a_typed_error(text: str) -> None:
    try:
        strict_json.loads(text, "the file", UsageError)
    except UsageError:
        pass


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, '{"a": NaN}', "[Infinity]", '{"a":1,"\\u0061":2}'])
def test_strict_json_refuses_deep_nesting_non_finite_numbers_and_escaped_duplicates(text: str) -> None:
    with pytest.raises(UsageError):
        strict_json.loads(text, "the file", UsageError)
