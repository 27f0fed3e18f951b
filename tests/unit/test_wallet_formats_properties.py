"""Property tests: whatever text reaches ``import_wallet``, only l2custody's typed errors come out.

Every reader (descriptor text, Core, BSMS, Caravan, Coldcard, Specter,
Specter-DIY, Electrum) gets mutated copies of the tools' own fixtures,
random JSON shapes, random setup-file lines and descriptors of 1 to 25 keys
with odd multipath suffixes. An import either returns a wallet whose
addresses derive, or raises an L2CustodyError; for the generated
descriptors the outcome is also predicted (valid iff 1 <= K <= N <= 20 with
a standard suffix). Derandomized, so a run is reproducible.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from embit import bip32
from embit.networks import NETWORKS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from l2custody.errors import L2CustodyError
from l2custody.wallet.descriptor import MAX_KEYS, MultisigDescriptor, descriptor_checksum
from l2custody.wallet.formats import ImportedWallet, import_wallet

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "vectors" / "wallets").glob("*/*"))
TEXTS = [p.read_text() for p in FIXTURES]
JSON_FIXTURES = [json.loads(t) for t in TEXTS if t.lstrip().startswith("{")]
NETWORKS_ASKED = st.sampled_from([None, "main", "test", "regtest", "signet"])
PROPERTY = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
STANDARD_SUFFIXES = ["/<0;1>/*", "/<1;0>/*", "/{0,1}/*", "/{1,0}/*", "/**"]
ODD_SUFFIXES = ["", "/0/*", "/<0;2>/*", "/<0;1;2>/*", "/<;>/*", "/{0,1/*", "/<0;1>/*/*", "/<0;1>/1h", "/*", "/<1h;0>/*"]


@cache
def pool() -> list[str]:
    """25 testnet account keys ``[fp/48h/1h/0h/2h]tpub`` from fixed seeds."""
    keys = []
    for i in range(25):
        root = bip32.HDKey.from_seed(bytes([i + 40]) * 32, version=NETWORKS["test"]["xprv"])
        account = root.derive("m/48h/1h/0h/2h").to_public()
        keys.append(f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{account.to_base58()}")
    return keys


def outcome(text: str, network: str | None) -> ImportedWallet | L2CustodyError:
    """Import; any exception other than an L2CustodyError fails the test (pytest shows it)."""
    try:
        got = import_wallet(text, network=network)
    except L2CustodyError as exc:
        assert exc.message and isinstance(exc.code, int)
        return exc
    assert got.name is None or isinstance(got.name, str)
    assert got.descriptor.first_address() and got.descriptor.address(True, 0)
    return got


# --- mutated fixtures ------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "swap-lines", "drop-line", "dup-line", "cut"]))
        lines = text.splitlines()
        if op in ("swap-lines", "drop-line", "dup-line") and len(lines) > 1:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "swap-lines":
                lines[i], lines[j] = lines[j], lines[i]
            elif op == "drop-line":
                del lines[i]
            else:
                lines.insert(j, lines[i])
            text = "\n".join(lines)
            continue
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        elif op == "insert":
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif op == "replace":
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
        else:
            text = text[:at]
    return text


@PROPERTY
@given(mutated(), NETWORKS_ASKED)
def test_mutated_tool_files_give_a_wallet_or_a_typed_error(text: str, network: str | None) -> None:
    outcome(text, network)


# --- JSON of every shape -----------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def reshaped_json(draw: st.DrawFn) -> str:
    """A tool's JSON file with one value somewhere replaced by a value of any shape."""
    data = json.loads(json.dumps(draw(st.sampled_from(JSON_FIXTURES))))
    node = data
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        node[key] = draw(JSON_VALUES)
        break
    return json.dumps(data)


@PROPERTY
@given(reshaped_json(), NETWORKS_ASKED)
def test_tool_json_with_values_of_the_wrong_shape(text: str, network: str | None) -> None:
    outcome(text, network)


@PROPERTY
@given(JSON_VALUES, NETWORKS_ASKED)
def test_random_json(value: object, network: str | None) -> None:
    outcome(json.dumps(value), network)


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "quorum",
                "extendedPublicKeys",
                "wallet_type",
                "x1/",
                "x2/",
                "descriptors",
                "descriptor",
                "recv_descriptor",
                "change_descriptor",
                "receive",
                "change",
                "network",
                "addressType",
                "name",
                "label",
                "wallet_name",
                "address",
                "address_index",
            ]
        ),
        JSON_VALUES,
        min_size=1,
        max_size=6,
    ),
    NETWORKS_ASKED,
)
def test_json_with_the_keys_readers_dispatch_on(data: dict, network: str | None) -> None:
    outcome(json.dumps(data), network)


# --- text lines ------------------------------------------------------------------------------
LINE = st.one_of(
    st.builds(lambda v: f"Policy: {v}", st.text(max_size=10) | st.from_regex(r"\d{1,3} of \d{1,3}", fullmatch=True)),
    st.builds(lambda v: f"Format: {v}", st.sampled_from(["P2WSH", "p2sh", "P2SH-P2WSH", "p2wsh-p2sh", "", "x"])),
    st.builds(lambda v: f"Derivation: {v}", st.sampled_from(["m/48'/1'/0'/2'", "m", "", "m/x", "m/2147483648"])),
    st.builds(lambda v: f"# derivation: {v}", st.sampled_from(["m/48'/1'/0'/2'", "m/1'", "bad"])),
    st.builds(lambda k: f"{k[1:9].upper()}: {k.split(']')[1]}", st.sampled_from(pool()[:6])),
    st.builds(lambda fp, v: f"{fp}: {v}", st.from_regex(r"[0-9a-fA-F]{8}", fullmatch=True), st.text(max_size=20)),
    st.builds(lambda v: f"Name: {v}", st.text(max_size=12)),
    st.sampled_from(["BSMS 1.0", "No path restrictions", "/0/*,/1/*", "/1/*,/0/*", "", "#", "seed: a b c"]),
    st.text(max_size=30),
)


@PROPERTY
@given(st.lists(LINE, max_size=12), NETWORKS_ASKED)
def test_random_setup_file_and_record_lines(lines: list[str], network: str | None) -> None:
    outcome("\n".join(lines), network)


@PROPERTY
@given(st.text(), NETWORKS_ASKED)
def test_arbitrary_text(text: str, network: str | None) -> None:
    outcome(text, network)


# --- 1..25 keys, odd multipath, in each format --------------------------------------------------
@st.composite
def multisig(draw: st.DrawFn) -> tuple[int, list[str], str]:
    n = draw(st.integers(1, 25))
    k = draw(st.integers(1, n) | st.integers(0, 26))
    suffix = draw(st.sampled_from(STANDARD_SUFFIXES) | st.sampled_from(ODD_SUFFIXES))
    keys = draw(st.permutations(pool()))[:n]
    return k, keys, suffix


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(multisig(), st.booleans(), st.sampled_from(["descriptor", "bsms", "specter-diy", "specter", "core"]))
def test_descriptors_of_1_to_25_keys_in_every_format(
    case: tuple[int, list[str], str], checksum: bool, fmt: str
) -> None:
    k, keys, suffix = case
    # Specter (Desktop and DIY) read keys without a suffix, and its receive-only /0/*, as /{0,1}/*
    understood = STANDARD_SUFFIXES + (["", "/0/*"] if fmt.startswith("specter") else [])
    valid = suffix in understood and 1 <= k <= len(keys) <= MAX_KEYS
    body = f"wsh(sortedmulti({k},{','.join(key + suffix for key in keys)}))"
    desc = f"{body}#{descriptor_checksum(body)}" if checksum else body
    if fmt == "bsms":
        template = body if suffix == "/**" else desc
        first = MultisigDescriptor.parse(body, "regtest").first_address() if valid else "bcrt1qxyz"
        text = f"BSMS 1.0\n{template}\n{'/0/*,/1/*' if suffix == '/**' else 'No path restrictions'}\n{first}\n"
    elif fmt == "specter-diy":
        text = f"addwallet Treasury&{desc}"
    elif fmt == "specter":
        text = json.dumps({"label": "Treasury", "descriptor": desc})
    elif fmt == "core":
        text = json.dumps([{"desc": desc, "active": True}])
    else:
        text = desc
    got = outcome(text, "regtest")
    event(f"{fmt}: {'wallet' if valid else 'refused'}")
    assert isinstance(got, ImportedWallet) == valid, (got, suffix, k, len(keys))
    if isinstance(got, ImportedWallet):
        assert (got.descriptor.threshold, got.descriptor.n) == (k, len(keys))


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 25),
    st.integers(0, 26),
    st.integers(-1, 26),
    st.sampled_from(["P2WSH", "P2WSH", "P2SH", None]),
    st.sampled_from(["coldcard", "caravan"]),
)
def test_setup_files_of_1_to_25_keys(n: int, k: int, stated_n: int, fmt: str | None, tool: str) -> None:
    """``stated_n`` -1 stands for "the right N"; ``k`` above N is folded into 1..N half the time."""
    keys = pool()[:n]
    stated_n = n if stated_n < 0 else stated_n
    k = k if k % 2 else max(1, k % (n + 1))
    if tool == "coldcard":
        lines = [f"Policy: {k} of {stated_n}", "Derivation: m/48'/1'/0'/2'"] + ([f"Format: {fmt}"] if fmt else [])
        lines += [f"{key[1:9]}: {key.split(']')[1]}" for key in keys]
        text = "\n".join(lines)
    else:
        text = json.dumps(
            {
                "name": "T",
                "addressType": fmt,
                "network": "regtest",
                "quorum": {"requiredSigners": k, "totalSigners": stated_n},
                "extendedPublicKeys": [
                    {"xpub": key.split("]")[1], "xfp": key[1:9], "bip32Path": "m/48'/1'/0'/2'"} for key in keys
                ],
            }
        )
    got = outcome(text, "regtest")
    valid = fmt == "P2WSH" and stated_n == n and 1 <= k <= n <= MAX_KEYS
    event(f"{tool}: {'wallet' if valid else 'refused'}")
    assert isinstance(got, ImportedWallet) == valid, (got, tool, k, stated_n, n, fmt)


# --- the descriptor parsers themselves ----------------------------------------------------------
TOKENS = st.sampled_from(
    ["wsh(", "sh(", "sortedmulti(", "multi(", ")", "(", ",", "[", "]", "/", "*", "**", "<", ">", ";", "{", "}",
     "0", "1", "2", "17", "21", "h", "'", "#", "48h/1h/0h/2h", "00000000", "deadbeef", " ", "\n"]
)  # fmt: skip
DESCRIPTOR_SOUP = st.lists(TOKENS | st.sampled_from(pool()[:3]) | st.text(max_size=3), max_size=30).map("".join)


@PROPERTY
@given(DESCRIPTOR_SOUP, NETWORKS_ASKED)
def test_descriptor_token_soup_gives_a_descriptor_or_a_typed_error(text: str, network: str | None) -> None:
    from l2custody.wallet.descriptor import KeyOrigin

    for parse in (
        lambda: MultisigDescriptor.parse(text, network),
        lambda: MultisigDescriptor.parse_pair(text, text.replace("/0/", "/1/"), network, ordered=True),
        lambda: KeyOrigin.parse(text),
    ):
        try:
            parse()
        except L2CustodyError:
            pass
    outcome(text, network)
