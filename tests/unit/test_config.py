"""config.py: reading, validation errors naming key and file, init writing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from l2custody.config import (
    Config,
    init_config,
    load_config,
    render_config,
    resolve_config_path,
)
from l2custody.errors import ConfigError

REGTEST_ADDR = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
MAINNET_ADDR = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"

BASE = """
network = "regtest"
data_dir = "data"

[chain]
url = "http://127.0.0.1:18443"
user = "u"
password = "p"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults_and_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    assert isinstance(cfg, Config)
    assert cfg.network == "regtest" and cfg.embit_network == "regtest"
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.store_path == tmp_path / "data" / "l2custody.sqlite"
    assert cfg.wallet.gap_limit == 20 and cfg.wallet.birthday == 0
    assert cfg.policy.allowed_destinations == () and not cfg.policy.allow_any_destination
    assert cfg.sessions.deadline_margin_blocks == 144
    assert cfg.chain.url == "http://127.0.0.1:18443" and cfg.chain.password == "p"


def test_password_is_not_in_repr(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE.replace('"p"', '"s3cret-pw"')))
    assert "s3cret-pw" not in repr(cfg)


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    with pytest.raises(AttributeError):
        cfg.network = "mainnet"  # type: ignore[misc]


@pytest.mark.parametrize(
    "extra, key, problem",
    [
        ("[wallet]\ngap_limit = 0\n", "wallet.gap_limit", "at least 1"),
        ('[wallet]\ngap_limit = "20"\n', "wallet.gap_limit", "expected an integer"),
        ("[wallet]\ngap_limit = true\n", "wallet.gap_limit", "expected an integer"),
        ("[wallet]\nbirthday = -5\n", "wallet.birthday", "at least 0"),
        ("[wallet]\nfallback_fee_rate = 0\n", "wallet.fallback_fee_rate", "greater than 0"),
        ("[wallet]\ngap_limt = 5\n", "wallet.gap_limt", "unknown key"),
        ("[policy]\nmax_fee_sat = -1\n", "policy.max_fee_sat", "at least 0"),
        ('[policy]\nmax_fee_rate = "high"\n', "policy.max_fee_rate", "expected a number"),
        ('[policy]\nallowed_destinations = "x"\n', "policy.allowed_destinations", "a list"),
        ('[policy]\nallowed_destinations = ["nonsense"]\n', "policy.allowed_destinations", "not a bitcoin address"),
        ("[sessions]\ndeadline_margin_blocks = 5000\n", "sessions.deadline_margin_blocks", "at most 2015"),
        ("[nodes]\nx = 1\n", "nodes", "unknown key"),
    ],
)
def test_bad_values_name_key_and_file(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    path = write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(path) in exc.value.message
    assert key in exc.value.message
    assert problem in exc.value.message


def test_destination_of_another_network_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + f'[policy]\nallowed_destinations = ["{MAINNET_ADDR}"]\n')
    with pytest.raises(ConfigError, match="policy.allowed_destinations") as exc:
        load_config(path)
    assert "mainnet" in exc.value.message


def test_destination_of_our_network_is_kept(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE + f'[policy]\nallowed_destinations = ["{REGTEST_ADDR}"]\n'))
    assert cfg.policy.allowed_destinations == (REGTEST_ADDR,)


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ('network = "bitcoin"\n', "network", "must be one of"),
        ("data_dir = 'x'\n", "network", "missing"),
        ('network = "regtest"\n[chain]\nurl = "ftp://x"\nuser="u"\npassword="p"\n', "chain.url", "http://"),
        ('network = "regtest"\n[chain]\nurl = "http://x:1"\n', "chain.user", "cookie"),
        ('network = "regtest"\n[chain]\nurl = "http://x:1"\nuser = "u"\n', "chain.password", "neither"),
        ('network = "regtest"\n[chain]\nkind = "electrum"\ncookie="c"\n', "chain.kind", "must be one of"),
        ('network = "regtest"\n[chain]\nkind = "btcd"\nurl="http://x:1"\ncookie="c"\n', "chain.url", "TLS"),
        (
            'network = "regtest"\n[chain]\nurl="https://x:1"\ncookie="c"\ncert="missing.cert"\n',
            "chain.cert",
            "does not exist",
        ),
        ('network = "regtest"\nbogus = 1\n[chain]\ncookie="c"\n', "bogus", "unknown key"),
    ],
)
def test_bad_chain_and_top_level(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert key in exc.value.message and problem in exc.value.message and str(path) in exc.value.message


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="l2custody init"):
        load_config(tmp_path / "nope.toml")


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "network = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as exc:
        load_config(path)
    assert str(path) in exc.value.message


def test_env_variable_chooses_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, BASE)
    monkeypatch.setenv("L2CUSTODY_CONFIG", str(path))
    assert resolve_config_path(None) == path
    assert load_config().path == path


def test_default_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("L2CUSTODY_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert resolve_config_path(None) == tmp_path / "l2custody" / "config.toml"


def test_password_file_is_read_on_demand(tmp_path: Path) -> None:
    from l2custody.config import chain_password

    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    cfg = load_config(write(tmp_path, BASE.replace('password = "p"', f'password_file = "{pw}"')))
    assert cfg.chain.password is None
    assert chain_password(cfg.chain) == "from-file"


@pytest.mark.parametrize("network", ["regtest", "signet", "testnet", "mainnet"])
def test_rendered_configs_load(tmp_path: Path, network: str) -> None:
    text = render_config(network, tmp_path / "d")
    path = write(tmp_path, text)
    cfg = load_config(path)
    assert cfg.network == network and cfg.data_dir == tmp_path / "d"
    assert cfg.chain.cookie is not None


def test_init_writes_commented_0600_config_and_data_dir(tmp_path: Path) -> None:
    cert = tmp_path / "rpc.cert"
    cert.write_text("cert")
    path = tmp_path / "conf" / "config.toml"
    cfg = init_config(
        path,
        "regtest",
        data_dir=tmp_path / "data",
        chain_url="https://127.0.0.1:18334",
        chain_user="me",
        chain_password="pw",
        chain_cert=cert,
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "data").is_dir()
    assert cfg.chain.kind == "btcd" and cfg.chain.cert == cert and cfg.chain.user == "me"
    assert "# " in path.read_text()  # commented for people


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    init_config(path, "regtest", data_dir=tmp_path / "d")
    before = path.read_text()
    with pytest.raises(ConfigError, match="--force"):
        init_config(path, "signet", data_dir=tmp_path / "d")
    assert path.read_text() == before
    cfg = init_config(path, "signet", data_dir=tmp_path / "d", force=True)
    assert cfg.network == "signet"


def test_init_rejects_unknown_network(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown network"):
        init_config(tmp_path / "c.toml", "litecoin")
    assert not (tmp_path / "c.toml").exists()


def test_quotes_in_paths_survive_rendering(tmp_path: Path) -> None:
    odd = tmp_path / 'dir "with" quotes\\x'
    cfg = load_config(write(tmp_path, render_config("regtest", odd)))
    assert cfg.data_dir == odd
