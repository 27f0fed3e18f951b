"""lightningd's byte stream, framed by JSON structure and read strictly (``cln_policy.wire``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.custody.cln_policy.wire import MAX_DEPTH, Framer, Unreadable, envelope, read_message

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def message(i: int, params: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "m", "params": params}, ensure_ascii=False).encode()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(params=st.lists(JSON, min_size=1, max_size=4), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_any_chunking_gives_the_same_messages(params: list[object], cuts: list[int]) -> None:
    stream = b"".join(message(i, p) + b"\n\n" for i, p in enumerate(params))
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    framer = Framer()
    frames = [f for chunk in chunks for f in framer.feed(chunk)]
    assert [read_message(f)["params"] for f in frames] == params
    assert [envelope(f).id for f in frames] == list(range(len(params)))


def test_a_blank_line_inside_a_string_is_not_a_boundary() -> None:
    raw = b'{"jsonrpc":"2.0","id":7,"method":"rpc_command","params":{"x":"a\n\n{\\"id\\":8}\n\n"}}\n\n'
    (frame,) = Framer().feed(raw)
    with pytest.raises(Unreadable, match="not strict JSON"):
        read_message(frame)
    assert envelope(frame).id == 7 and envelope(frame).method == "rpc_command"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"id":1,"method":"m","params":{"a":1,"a":2}}', "appears twice"),
        (b'{"id":1,"method":"m","params":{"a":1,"\\u0061":2}}', "appears twice"),
        (b'{"id":1,"method":"m","params":[{"b":{"c":1,"c":1}}]}', "appears twice"),
        (b'{"id":1,"method":"m","params":{"a":NaN}}', "not JSON"),
        (b'{"id":1,"method":"m","params":{"a":"\xff"}}', "not UTF-8"),
        (b'{"id":1,"method":"m","params":' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", "nests"),
        (b'["not", "an", "object"]', "must be a JSON object"),
    ],
)
def test_ambiguous_or_unreadable_messages(raw: bytes, fragment: str) -> None:
    (frame,) = Framer().feed(raw)
    with pytest.raises(Unreadable, match=fragment):
        read_message(frame)


def test_the_envelope_takes_the_first_raw_member_as_lightningd_does() -> None:
    (frame,) = Framer().feed(b'{"id":"cln:x#1","method":"rpc_command","id":"other","params":{"a":tru}}')
    assert envelope(frame).id == "cln:x#1"
    (stray,) = Framer().feed(b"garbage ")
    assert stray.stray and envelope(stray).id is None
