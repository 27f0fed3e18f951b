"""Numbers as a hurried operator or an attacker types them (issue 11's classes: unicode
digits, nan and infinity, decimal commas, usage errors, control characters in the config).

Each class is decided in one place (``l2custody/numbers.py``, ``amounts.parse_sats``,
``cli/params.number``, the config reader, ``config._q``); the property tests assert that
whatever comes in, only a value or one of l2custody's typed errors comes out.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.amounts import MAX_MONEY, parse_sats
from l2custody.backends.base import parse_channel_point
from l2custody.cli.params import number
from l2custody.config import _q, load_config
from l2custody.custody.channels import parse_channel_ref
from l2custody.custody.watch.metrics import parse_listen
from l2custody.errors import AmountError, ConfigError, DescriptorError, L2CustodyError, UsageError
from l2custody.numbers import is_decimal, is_positive
from l2custody.wallet.descriptor import parse_path
from tests.support.cli_runner import fails, init_regtest

UNICODE_DIGITS = ["²", "１００", "٣", "৩", "𝟗", "Ⅻ"]
NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"]
settings.register_profile("l2custody", max_examples=300, deadline=None, derandomize=True)
settings.load_profile("l2custody")


# --- digits: ASCII only ------------------------------------------------------------------
@pytest.mark.parametrize("text", UNICODE_DIGITS)
def test_unicode_digits_are_not_digits_anywhere(text: str) -> None:
    assert not is_decimal(text)
    with pytest.raises(DescriptorError, match="not an index"):
        parse_path(f"m/48h/{text}h")
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_listen(f"127.0.0.1:{text}")
    with pytest.raises(UsageError):
        parse_channel_point("ab" * 32 + f":{text}")
    with pytest.raises(UsageError):
        parse_channel_ref(f"{text}x1x0")


@given(st.text())
def test_is_decimal_means_int_reads_it_as_ascii(text: str) -> None:
    if is_decimal(text):
        assert int(text) == int(text.encode("ascii"))
    else:
        assert not (text and all("0" <= c <= "9" for c in text))


@given(st.text(max_size=40))
def test_derivation_paths_give_indexes_or_a_descriptor_error(text: str) -> None:
    try:
        out = parse_path(text)
    except DescriptorError:
        return
    assert all(isinstance(i, int) and 0 <= i < 2**32 for i in out)


# --- nan, infinity, huge -----------------------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_no_quantity_is_positive_unless_finite_and_above_zero(value: float) -> None:
    assert not is_positive(value)


@given(
    st.one_of(st.text(max_size=30), st.sampled_from(NON_FINITE + UNICODE_DIGITS + ["1_0", " 2 ", "+3", ".5", "1e3"]))
)
def test_the_cli_reads_a_finite_ascii_number_or_says_it_is_not_one(text: str) -> None:
    try:
        value = number(text)
    except typer.BadParameter as exc:
        assert text in str(exc) or repr(text) in str(exc)
        return
    assert math.isfinite(value) and text.strip().isascii()


def test_every_float_option_of_the_cli_is_read_by_our_parser() -> None:
    import click
    import typer.main

    from l2custody.cli import main

    main._register()
    root = typer.main.get_command(main.app)
    loose = []

    def walk(cmd: click.Command, path: str) -> None:
        for p in cmd.params:
            if p.type is click.FLOAT or isinstance(p.type, click.FloatRange):
                loose.append(f"{path} {p.name}")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(root, "l2custody")
    assert not loose, loose


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["watch", "--poll", "nan", "--once"], "not a number"),
        (["sweep", "west", "--fee-rate", "inf"], "not a number"),
        (["sweep", "west", "--fee-rate", "1e999"], "too large"),
        (["channel", "close", "ab" * 32 + ":0", "--fee-rate", "２"], "not a number"),
        (["wallet", "balance", "--bogus"], "No such option"),
        (["nosuchcommand"], "No such command"),
        (["channel", "show"], "Missing argument"),
    ],
)
def test_usage_errors_are_json_errors_with_json(tmp_path: Path, argv: list[str], fragment: str) -> None:
    err = fails(tmp_path / "none.toml", *argv, code=10)
    assert fragment in err["error"] and err["kind"] == "usage"


def test_a_negative_amount_is_an_amount_error_not_an_option(tmp_path: Path) -> None:
    err = fails(tmp_path / "none.toml", "sweep", "west", "--keep", "-5", code=12)
    assert "'-5'" in err["error"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300"])
def test_a_config_number_must_be_finite(tmp_path: Path, value: str) -> None:
    path = init_regtest(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("max_fee_rate = 200", f"max_fee_rate = {value}", 1))
    with pytest.raises(ConfigError, match="max_fee_rate"):
        load_config(path)


def test_a_config_integer_must_fit_the_store(tmp_path: Path) -> None:
    path = init_regtest(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("birthday = 0", f"birthday = {2**63}", 1))
    with pytest.raises(ConfigError, match="birthday"):
        load_config(path)


# --- amounts: commas ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "sats"),
    [("1,000", 1_000), ("1,500,000sat", 1_500_000), ("150000", 150_000), ("0.5btc", 50_000_000), ("1_000", 1_000)],
)
def test_thousands_grouping_of_satoshis_is_read(text: str, sats: int) -> None:
    assert parse_sats(text) == sats


@pytest.mark.parametrize("text", ["0,5btc", "0,5", "1,00", "10,00,000", "1,000.5", "1,000btc", ",500", "1,,000"])
def test_every_other_comma_is_refused(text: str) -> None:
    with pytest.raises(AmountError, match="cannot read amount"):
        parse_sats(text)


@given(st.text(max_size=30))
def test_an_amount_is_whole_satoshis_or_an_amount_error(text: str) -> None:
    try:
        sats = parse_sats(text)
    except AmountError:
        return
    assert isinstance(sats, int) and 0 <= sats <= MAX_MONEY


@given(st.integers(min_value=0, max_value=MAX_MONEY))
def test_every_amount_reads_back_in_every_notation(sats: int) -> None:
    assert parse_sats(str(sats)) == parse_sats(f"{sats:,}") == parse_sats(f"{sats}sat") == sats
    btc = f"{sats // 100_000_000}.{sats % 100_000_000:08d}btc"
    assert parse_sats(btc) == sats


# --- the config file we write ------------------------------------------------------------
@given(st.text())
def test_any_text_is_written_as_a_toml_string_that_reads_back_the_same(text: str) -> None:
    assert tomllib.loads("k = " + _q(text))["k"] == text


def test_init_with_control_characters_writes_a_config_that_loads(tmp_path: Path) -> None:
    from tests.support.cli_runner import run

    result = run(
        tmp_path / "c.toml",
        "init",
        "--network",
        "regtest",
        "--chain-user",
        "me\tyou",
        "--chain-password",
        'p"w\\\n',
        json_out=True,
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.chain.user == "me\tyou" and cfg.chain.password == 'p"w\\\n'
    assert json.loads(result.stdout)["network"] == "regtest"


def test_typed_errors_only(tmp_path: Path) -> None:
    """The classes above all raise subclasses of L2CustodyError (one hierarchy)."""
    for cls in (AmountError, ConfigError, DescriptorError, UsageError):
        assert issubclass(cls, L2CustodyError)


# --- files in another encoding -----------------------------------------------------------
NOT_UTF8 = b"\xff\xfe latin-1 \xe9\x00 binary"


def test_files_of_another_encoding_are_typed_errors_naming_the_file(tmp_path: Path) -> None:
    from l2custody.chain.rpc import JsonRpcChain
    from l2custody.config import ChainConfig, chain_password
    from l2custody.custody.funding.requests import read_batch
    from l2custody.errors import ChainUnreachable, SignerError
    from l2custody.wallet.signers import SoftwareSigner

    bad = tmp_path / "bad.bin"
    bad.write_bytes(NOT_UTF8)
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)
    with pytest.raises(UsageError, match="batch file .*not UTF-8"):
        read_batch(bad)
    with pytest.raises(SignerError, match="key file .*not UTF-8"):
        SoftwareSigner.from_file(bad)
    config = init_regtest(tmp_path)
    with pytest.raises(ConfigError, match="password_file .*not UTF-8"):
        chain_password(ChainConfig(url="http://127.0.0.1:1", kind="bitcoind", password_file=bad))
    source = JsonRpcChain("http://127.0.0.1:1", cookie=bad)
    with pytest.raises(ChainUnreachable, match="cookie .*not UTF-8"):
        source.call("getblockcount")
    err = fails(config, "wallet", "import", str(bad), code=None)
    assert "not UTF-8" in err["error"] and str(bad) in err["error"]


# --- addresses, URLs, macaroons ----------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:0", "ftp://x", "http://", "http://u:secret@[::1"]
)
def test_a_bad_chain_url_is_a_config_error_that_hides_credentials(url: str) -> None:
    from l2custody.chain.rpc import JsonRpcChain
    from l2custody.netaddr import http_url

    for attempt in (lambda: http_url(url), lambda: JsonRpcChain(url)):
        with pytest.raises(ConfigError) as err:
            attempt()
        assert "secret" not in err.value.message


@given(st.text(max_size=40))
def test_host_port_gives_a_port_in_range_or_a_usage_error(text: str) -> None:
    from l2custody.netaddr import host_port

    try:
        host, port = host_port(text, "--host")
    except UsageError:
        return
    assert host and 1 <= port <= 65535


@pytest.mark.parametrize("host", ["127.0.0.1:99999", "127.0.0.1:0", "::1:10009", "[::1:10009", "127.0.0.1:１０"])
def test_node_add_refuses_a_bad_host(tmp_path: Path, host: str) -> None:
    config = init_regtest(tmp_path)
    mac = tmp_path / "admin.macaroon"
    mac.write_bytes(b"\x02\x01" + bytes(62))
    err = fails(config, "node", "add", "west", "--lnd", "--host", host, "--macaroon", str(mac), code=10)
    assert "--host" in err["error"]


@pytest.mark.parametrize("content", [b"abc\n", b"", b"not a macaroon at all, just text\n", b"\x01" + bytes(40)])
def test_node_add_refuses_a_file_that_holds_no_macaroon(tmp_path: Path, content: bytes) -> None:
    config = init_regtest(tmp_path)
    mac = tmp_path / "admin.macaroon"
    mac.write_bytes(content)
    err = fails(config, "node", "add", "west", "--lnd", "--host", "127.0.0.1:10009", "--macaroon", str(mac), code=11)
    assert "macaroon" in err["error"]


def test_node_add_refuses_a_directory_as_the_cln_socket(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    err = fails(config, "node", "add", "east", "--cln", "--rpc-file", str(tmp_path), code=11)
    assert "is a directory" in err["error"]


@pytest.mark.parametrize(
    "uri",
    [
        "lndconnect://[::1:10009?macaroon=AgEDbG5k",
        "lndconnect://host:99999?macaroon=AgEDbG5k",
        "lndconnect://host:10009?macaroon=!!!!",
        "lndconnect://host:10009?macaroon=Ag%20ED",
        "lndconnect://host:10009?macaroon=A",
    ],
)
def test_a_garbled_lndconnect_uri_is_refused_not_read_as_an_empty_macaroon(uri: str) -> None:
    from l2custody.backends.lnd.connect import parse_lndconnect

    with pytest.raises(UsageError, match="lndconnect"):
        parse_lndconnect(uri)


# --- secrets never echoed ----------------------------------------------------------------
TPRV = "tprv8ZgxMBicQKsPd8jDFkEBRYkRZ8yZsvL6d9BXCwYrRz4ahn6Fmf3pjhzzcyiqKzEY5kJjUnHhDgVQ8NV9hUkWhjXJQy2tbNqa8BmDzJ7dZRG"
WORDS = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


@pytest.mark.parametrize("key", [TPRV, f"[deadbeef/48h/1h/0h/2h]{TPRV}/<0;1>/*", WORDS])
def test_a_private_key_or_seed_given_as_a_wallet_key_is_not_repeated(tmp_path: Path, key: str) -> None:
    config = init_regtest(tmp_path)
    err = fails(config, "wallet", "create", "-k", "1", "--key", key)
    assert "tprv8Zgx" not in err["error"] and "abandon" not in err["error"], err


def test_a_password_in_the_config_is_not_repeated_in_its_error(tmp_path: Path) -> None:
    path = init_regtest(tmp_path)
    text = path.read_text()
    path.write_text(text.replace('password = "p"', "password = 31415926", 1))
    with pytest.raises(ConfigError, match="password") as err:
        load_config(path)
    assert "31415926" not in err.value.message


def test_a_chain_url_with_a_login_is_shown_without_it() -> None:
    from l2custody.chain.rpc import JsonRpcChain
    from l2custody.errors import ChainUnreachable

    chain = JsonRpcChain("http://user:hunter2@127.0.0.1:9")
    assert "hunter2" not in repr(chain)
    with pytest.raises(ChainUnreachable) as err:
        chain.call("getblockcount")
    assert "hunter2" not in err.value.message and "127.0.0.1:9" in err.value.message


@given(st.text(max_size=60))
def test_redacted_text_never_contains_a_private_key(text: str) -> None:
    from l2custody.redact import shown

    assert "tprv8Zgx" not in shown(text + TPRV[:30] + text)
    assert "abandon" not in shown(text + " " + WORDS)
