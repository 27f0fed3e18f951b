"""One typed configuration, read from TOML and validated once.

``load_config(path)`` returns a frozen :class:`Config`; every bad value raises
:class:`~l2custody.errors.ConfigError` naming the key and the file, so the
rest of the code never re-checks configuration. ``write_config`` renders a
commented starting config (used by ``l2custody init``) from a small template;
reading uses :mod:`tomllib`, so there is no extra dependency.

Relative paths in the file are resolved against the file's directory; ``~``
is expanded. Secrets (the chain password) may be given inline or, better, as a
``password_file``; neither is ever part of ``repr()``.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2custody.errors import ConfigError
from l2custody.netaddr import http_url
from l2custody.networks import normalize_network
from l2custody.private_files import private_dir, write_private_file
from l2custody.text_files import not_utf8, read_text
from l2custody.user_paths import PathKind, path_kind, user_path, why

#: The networks a config may name (l2custody.networks maps them to the wallet's names).
NETWORKS = ("regtest", "signet", "testnet", "mainnet")
#: Default JSON-RPC ports of Bitcoin Core and btcd per network.
DEFAULT_RPC_URL = {
    ("bitcoind", "mainnet"): "http://127.0.0.1:8332",
    ("bitcoind", "testnet"): "http://127.0.0.1:18332",
    ("bitcoind", "signet"): "http://127.0.0.1:38332",
    ("bitcoind", "regtest"): "http://127.0.0.1:18443",
    ("btcd", "mainnet"): "https://127.0.0.1:8334",
    ("btcd", "testnet"): "https://127.0.0.1:18334",
    ("btcd", "signet"): "https://127.0.0.1:38332",
    ("btcd", "regtest"): "https://127.0.0.1:18334",
}
CHAIN_KINDS = ("auto", "bitcoind", "btcd")


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/l2custody/config.toml`` (``~/.config/...`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "l2custody" / "config.toml"


def default_data_dir(network: str) -> Path:
    """``$XDG_DATA_HOME/l2custody/<network>`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "l2custody" / network


@dataclass(frozen=True)
class ChainConfig:
    """How to reach the chain source (Bitcoin Core or btcd JSON-RPC)."""

    url: str
    kind: str = "auto"  # "auto" | "bitcoind" | "btcd"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    cookie: Path | None = None
    cert: Path | None = None  # btcd's rpc.cert (TLS), pinned
    timeout: float = 30.0


@dataclass(frozen=True)
class WalletConfig:
    gap_limit: int = 20
    birthday: int = 0  # first block height to scan
    fallback_fee_rate: float | None = None  # sat/vB when the chain has no estimate
    min_confirmations: int = 1  # for coins a spend may use
    mempool: bool = True  # look at the mempool for unconfirmed payments on sync


@dataclass(frozen=True)
class PolicyConfig:
    """What a spend may pay besides our own descriptor (see wallet/policy.py)."""

    allowed_destinations: tuple[str, ...] = ()
    max_fee_sat: int = 100_000
    max_fee_rate: float = 200.0  # sat/vB
    allow_any_destination: bool = False


@dataclass(frozen=True)
class SessionsConfig:
    """Funding sessions (used by the custody layer)."""

    deadline_margin_blocks: int = 144


@dataclass(frozen=True)
class RecoveryConfig:
    """Time-locked recovery paths of a miniscript wallet (wallet/recovery.py): ``wallet refresh``."""

    refresh_margin_blocks: int = 4320  # a coin whose recovery path opens within this many blocks is due a refresh
    auto_refresh_psbt: bool = True  # watch prepares the refresh PSBT of due coins (it moves nothing by itself)


@dataclass(frozen=True)
class RehearsalConfig:
    """``l2custody wallet rehearse`` (wallet/rehearsal.py): the test spend before trusting a setup."""

    required: bool = True  # channel open/batch refuse a wallet generation that was never rehearsed
    max_age_days: int = 90  # report flags a signer whose last rehearsal signature is older


@dataclass(frozen=True)
class WatchConfig:
    """``l2custody watch`` and ``report`` (custody/watch/watcher.py, custody/report/snapshot.py)."""

    poll_seconds: float = 30.0  # how often every node and the chain tip are read
    sweep_threshold_sat: int = 100_000  # hot-wallet excess above which a sweep is due (and report flags it)
    sweep_keep_sat: int = 0  # left in each node wallet on a sweep (the anchor reserve is always kept)
    sweep_fee_rate: float | None = None  # sat/vB for automatic sweeps; None: the node's estimate
    auto_sweep: bool = False  # False: due sweeps are only logged (dry run)
    backup_dir: Path | None = None  # None: <data_dir>/backups
    unreachable_alert_seconds: float = 300.0  # alert when a node stays unreachable this long
    deadline_warning_blocks: int = 144  # warn when a funding session has this many blocks left
    auto_migrate_psbt: bool = True  # prepare the migration PSBT of a coin landing in an older wallet generation


@dataclass(frozen=True)
class AlertsConfig:
    """Where ``watch`` sends alerts besides its log."""

    webhook_url: str | None = None  # JSON POST
    command: tuple[str, ...] = ()  # argv; the alert JSON on stdin
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``path`` is the file it was read from."""

    path: Path
    network: str  # "regtest" | "signet" | "testnet" | "mainnet"
    data_dir: Path
    chain: ChainConfig
    wallet: WalletConfig = WalletConfig()
    policy: PolicyConfig = PolicyConfig()
    sessions: SessionsConfig = SessionsConfig()
    rehearsal: RehearsalConfig = RehearsalConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    watch: WatchConfig = WatchConfig()
    alerts: AlertsConfig = AlertsConfig()

    @property
    def embit_network(self) -> str:
        """The network name embit and the descriptor code use ("main", "test"...)."""
        return normalize_network(self.network)

    @property
    def store_path(self) -> Path:
        return self.data_dir / "l2custody.sqlite"


# --- reading -----------------------------------------------------------------


class _Reader:
    """Typed access to one TOML table, raising ConfigError with key and file."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix
        self.seen: set[str] = set()

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"config {self.path}: {self._name(key)}: {problem}")

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
        self.seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        # bool is an int in Python; do not accept true for a number
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
            got = f"a {type(value).__name__} (not shown: it is a secret)" if key in _SECRET_KEYS else repr(value)
            raise self.error(key, f"expected {what}, got {got}")
        return value

    def integer(self, key: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.get(key, int, default, "an integer")
        maximum = _SQLITE_MAX_INT if maximum is None else maximum  # the store keeps every integer
        if value < minimum or value > maximum:
            upper = f" and at most {maximum}" if maximum != _SQLITE_MAX_INT else ""
            raise self.error(key, f"must be at least {minimum}{upper}, got {value}")
        return value

    def number(self, key: str, default: float | None, minimum: float = 0.0) -> float | None:
        value = self.get(key, (int, float), default, "a number")
        if value is None:
            return None
        if not math.isfinite(value) or value <= minimum or value > _LARGEST_NUMBER:
            raise self.error(key, f"must be a finite number greater than {minimum}, got {value}")
        return float(value)

    def string(self, key: str, default: str | None, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.get(key, str, default, "a string")
        if value is not None and choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        return self.get(key, bool, default, "true or false")

    def path_value(self, key: str, must_exist: bool = False) -> Path | None:
        value = self.string(key, None)
        if value is None or value == "":
            return None
        p = user_path(value, f"config {self.path}: {self._name(key)}", ConfigError, relative_to=self.path.parent)
        if must_exist and path_kind(p, f"config {self.path}: {self._name(key)}", ConfigError) is PathKind.MISSING:
            raise self.error(key, f"file {p} does not exist")
        return p

    def table_of(self, key: str) -> dict[str, Any]:
        return self.get(key, dict, {}, "a table") if key in self.table else {}

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (check the spelling; see `l2custody init --help`)")


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the config file.

    ``path`` None means ``$L2CUSTODY_CONFIG`` or the default path. Raises
    ConfigError (naming the key and the file) for a missing file, bad TOML
    or any bad value.
    """
    path = resolve_config_path(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8").removeprefix("\ufeff"))
    except FileNotFoundError:
        raise ConfigError(
            f"no config file at {path}; create one with `l2custody init --network regtest` "
            "(or pass --config / set L2CUSTODY_CONFIG)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {not_utf8(exc)}; is --config the right file?") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {why(exc)}") from None
    return parse_config(data, path)


def resolve_config_path(path: Path | str | None) -> Path:
    """The config path to use: the argument, ``$L2CUSTODY_CONFIG``, or the default."""
    if path is None:
        env = os.environ.get("L2CUSTODY_CONFIG")
        path = Path(env) if env else default_config_path()
    return user_path(path, "config file", ConfigError)


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate an already-parsed TOML document (``path`` names it in errors)."""
    top = _Reader(path, data)
    network = top.string("network", None, NETWORKS)
    if network is None:
        raise top.error("network", f"missing; set network = one of {', '.join(NETWORKS)}")
    data_dir = top.path_value("data_dir") or default_data_dir(network)
    chain = _chain(_Reader(path, top.table_of("chain"), "chain"), network)
    wallet = _wallet(_Reader(path, top.table_of("wallet"), "wallet"))
    policy = _policy(_Reader(path, top.table_of("policy"), "policy"), network)
    sessions = _sessions(_Reader(path, top.table_of("sessions"), "sessions"))
    rehearsal = _rehearsal(_Reader(path, top.table_of("rehearsal"), "rehearsal"))
    recovery = _recovery(_Reader(path, top.table_of("recovery"), "recovery"))
    watch = _watch(_Reader(path, top.table_of("watch"), "watch"))
    alerts = _alerts(_Reader(path, top.table_of("alerts"), "alerts"))
    top.reject_unknown()
    return Config(
        path=path,
        network=network,
        data_dir=data_dir,
        chain=chain,
        wallet=wallet,
        policy=policy,
        sessions=sessions,
        rehearsal=rehearsal,
        recovery=recovery,
        watch=watch,
        alerts=alerts,
    )


def _chain(r: _Reader, network: str) -> ChainConfig:
    kind = r.string("kind", "auto", CHAIN_KINDS) or "auto"
    url = r.string("url", None)
    if url is None:
        url = DEFAULT_RPC_URL[("btcd" if kind == "btcd" else "bitcoind", network)]
    try:
        http_url(url)
    except ConfigError as exc:
        raise r.error("url", exc.message) from None
    cfg = ChainConfig(
        url=url.rstrip("/"),
        kind=kind,
        user=r.string("user", None),
        password=r.string("password", None),
        password_file=r.path_value("password_file", must_exist=True),
        cookie=r.path_value("cookie"),
        cert=r.path_value("cert", must_exist=True),
        timeout=r.number("timeout", 30.0) or 30.0,
    )
    r.reject_unknown()
    if cfg.cookie is None and cfg.user is None:
        raise r.error("user", "set either user (with password or password_file) or cookie")
    if cfg.user is not None and cfg.password is None and cfg.password_file is None:
        raise r.error("password", f"user {cfg.user!r} is set but neither password nor password_file is")
    if cfg.password is not None and cfg.password_file is not None:
        raise r.error("password_file", "set password or password_file, not both")
    if cfg.cert is not None and not cfg.url.startswith("https://"):
        raise r.error("cert", "a TLS cert is set but url is not https:// (btcd needs https)")
    if cfg.kind == "btcd" and not cfg.url.startswith("https://"):
        raise r.error("url", "btcd serves its RPC over TLS; use https:// and set cert = rpc.cert")
    return cfg


def _wallet(r: _Reader) -> WalletConfig:
    cfg = WalletConfig(
        gap_limit=r.integer("gap_limit", 20, minimum=1, maximum=10_000),
        birthday=r.integer("birthday", 0, minimum=0),
        fallback_fee_rate=r.number("fallback_fee_rate", None),
        min_confirmations=r.integer("min_confirmations", 1, minimum=0),
        mempool=r.boolean("mempool", True),
    )
    r.reject_unknown()
    return cfg


def _policy(r: _Reader, network: str) -> PolicyConfig:
    dests = r.get("allowed_destinations", list, [], "a list of addresses")
    for i, d in enumerate(dests):
        if not isinstance(d, str) or not d.strip():
            raise r.error("allowed_destinations", f"entry {i} must be an address string, got {d!r}")
    checked = tuple(_check_address(r, "allowed_destinations", d.strip(), network) for d in dests)
    cfg = PolicyConfig(
        allowed_destinations=checked,
        max_fee_sat=r.integer("max_fee_sat", 100_000, minimum=0),
        max_fee_rate=r.number("max_fee_rate", 200.0) or 200.0,
        allow_any_destination=r.boolean("allow_any_destination", False),
    )
    r.reject_unknown()
    return cfg


def _check_address(r: _Reader, key: str, address: str, network: str) -> str:
    """Refuse an address that is invalid or belongs to another network than ``network``."""
    from l2custody.errors import L2CustodyError
    from l2custody.wallet.addresses import address_to_script

    try:
        address_to_script(address, normalize_network(network))
    except L2CustodyError as exc:
        raise r.error(key, exc.message) from None
    return address


def _sessions(r: _Reader) -> SessionsConfig:
    cfg = SessionsConfig(
        deadline_margin_blocks=r.integer("deadline_margin_blocks", 144, minimum=0, maximum=2015),
    )
    r.reject_unknown()
    return cfg


def _rehearsal(r: _Reader) -> RehearsalConfig:
    cfg = RehearsalConfig(
        required=r.boolean("required", True),
        max_age_days=r.integer("max_age_days", 90, minimum=1, maximum=36_500),
    )
    r.reject_unknown()
    return cfg


def _recovery(r: _Reader) -> RecoveryConfig:
    cfg = RecoveryConfig(
        refresh_margin_blocks=r.integer("refresh_margin_blocks", 4320, minimum=0, maximum=65_535),
        auto_refresh_psbt=r.boolean("auto_refresh_psbt", True),
    )
    r.reject_unknown()
    return cfg


def _watch(r: _Reader) -> WatchConfig:
    cfg = WatchConfig(
        poll_seconds=r.number("poll_seconds", 30.0, minimum=0.0) or 30.0,
        sweep_threshold_sat=r.integer("sweep_threshold_sat", 100_000, minimum=0),
        sweep_keep_sat=r.integer("sweep_keep_sat", 0, minimum=0),
        sweep_fee_rate=r.number("sweep_fee_rate", None),
        auto_sweep=r.boolean("auto_sweep", False),
        backup_dir=r.path_value("backup_dir"),
        unreachable_alert_seconds=r.number("unreachable_alert_seconds", 300.0, minimum=0.0) or 300.0,
        deadline_warning_blocks=r.integer("deadline_warning_blocks", 144, minimum=0, maximum=2016),
        auto_migrate_psbt=r.boolean("auto_migrate_psbt", True),
    )
    r.reject_unknown()
    return cfg


def _alerts(r: _Reader) -> AlertsConfig:
    import shlex

    url = r.string("webhook_url", None) or None
    if url is not None:
        try:
            http_url(url, "webhook_url")
        except ConfigError as exc:
            raise r.error("webhook_url", exc.message) from None
    raw = r.get("command", (str, list), None, "a command line or a list of arguments")
    if isinstance(raw, str):
        try:
            command = tuple(shlex.split(raw))
        except ValueError as exc:
            raise r.error("command", f"cannot split {raw!r} into arguments: {exc}") from None
    else:
        command = tuple(raw or ())
        if not all(isinstance(a, str) and a for a in command):
            raise r.error("command", f"every argument must be a non-empty string, got {raw!r}")
    cfg = AlertsConfig(
        webhook_url=url,
        command=command,
        timeout_seconds=r.number("timeout_seconds", 10.0) or 10.0,
    )
    r.reject_unknown()
    return cfg


def chain_password(cfg: ChainConfig) -> str | None:
    """The RPC password, read from ``password_file`` when one is configured."""
    if cfg.password_file is not None:
        return read_text(cfg.password_file, "[chain] password_file", ConfigError).strip()
    return cfg.password


# --- writing -----------------------------------------------------------------

_TEMPLATE = """\
# l2custody configuration ({network}). Written by `l2custody init`; edit freely.
# Every value is checked when l2custody starts; a bad one is reported with its key.

network = "{network}"          # regtest | signet | testnet | mainnet
data_dir = {data_dir}          # the store (l2custody.sqlite) and signer exports live here

[chain]
# JSON-RPC of Bitcoin Core (http://...) or btcd (https://..., with its rpc.cert).
kind = "{kind}"                # auto | bitcoind | btcd
url = {url}
{auth}
{cert}
timeout = 30                   # seconds per request

[wallet]
gap_limit = 20                 # unused addresses watched past the last used one, per branch
birthday = {birthday}                   # first block to scan; set it to the wallet's creation height
{fallback_fee}
min_confirmations = 1          # confirmations a coin needs before a spend may use it
mempool = true                 # report unconfirmed payments seen in the mempool (each sync reads
                               # every mempool transaction it has not seen: costly on a busy mainnet)

[policy]
# Where a spend may pay besides our own descriptor. Anything else is refused
# before a signer sees it. Add addresses here to allow them:
#   allowed_destinations = ["bcrt1q..."]
allowed_destinations = []
max_fee_sat = 100000           # absolute fee cap per transaction
max_fee_rate = 200             # sat/vB cap
allow_any_destination = false  # true disables the destination check (not recommended)

[sessions]
deadline_margin_blocks = 144   # blocks kept in hand before a peer may forget a negotiated channel

[rehearsal]
# `l2custody wallet rehearse`: a small spend to the wallet itself, signed by K signers, broadcast,
# confirmed and checked back, before the setup is trusted with channels.
required = true                # channel open/batch refuse a wallet (generation) never rehearsed;
                               # false also stops report flagging unrehearsed wallets and signers
max_age_days = 90              # report flags a signer that has not signed a rehearsal for this long

[recovery]
# Wallets with time-locked recovery paths (`wallet create --recovery KEY@BLOCKS`): a coin's recovery
# path opens BLOCKS after it confirmed; `wallet refresh` re-spends it with the primary keys to restart the clock.
refresh_margin_blocks = 4320   # report/watch warn, and refresh picks coins, this many blocks before a path opens
auto_refresh_psbt = true       # watch prepares the refresh PSBT of due coins for the signers (moves nothing)

[watch]
# `l2custody watch` (and the checks of `l2custody report`)
poll_seconds = 30              # read every node and the chain tip this often (lnd events wake it sooner)
sweep_threshold_sat = 100000   # a node wallet holding more than this above its reserve is due a sweep
sweep_keep_sat = 0             # left in the node wallet by a sweep (its anchor reserve is always kept)
auto_sweep = false             # true: watch sweeps due node wallets to the multisig; false: logs a dry run
# sweep_fee_rate = 2           # sat/vB for automatic sweeps (default: the node's estimate)
# backup_dir = "/var/backups/l2custody"   # channel backups (default: <data_dir>/backups)
unreachable_alert_seconds = 300   # alert when a node cannot be reached for this long
deadline_warning_blocks = 144  # alert when a funding session has this many blocks left before its deadline
auto_migrate_psbt = true       # a coin landing in an older wallet generation gets its migration PSBT
                               # (to the newest generation) prepared for its signers; nothing moves until
                               # they sign. The fee rate is sweep_fee_rate (default: the chain's estimate)

[alerts]
# Alerts always go to the log; also to a webhook (JSON POST) and/or a command (alert JSON on stdin).
# webhook_url = "https://alerts.example/hook"
# command = ["/usr/local/bin/page-oncall"]
timeout_seconds = 10
"""


#: Keys whose values are never repeated in an error.
_SECRET_KEYS = frozenset({"password"})

#: Integers the store can hold (SQLite INTEGER); numbers beyond any sane configuration.
_SQLITE_MAX_INT = 2**63 - 1
_LARGEST_NUMBER = 1e15

#: TOML basic-string escapes: backslash, quote and every control character.
_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _q(value: str | Path) -> str:
    """A TOML basic string of ``value``: any text, control characters included, reads back
    as the same text."""
    out = []
    for ch in str(value):
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render_config(
    network: str,
    data_dir: Path,
    chain_url: str | None = None,
    chain_kind: str = "auto",
    chain_user: str | None = None,
    chain_password: str | None = None,
    chain_cookie: Path | None = None,
    chain_cert: Path | None = None,
    birthday: int = 0,
) -> str:
    """The text of a starting config; ``parse_config`` accepts what this returns."""
    if network not in NETWORKS:
        raise ConfigError(f"unknown network {network!r}; use one of {', '.join(NETWORKS)}")
    if chain_kind not in CHAIN_KINDS:
        raise ConfigError(f"unknown chain kind {chain_kind!r}; use one of {', '.join(CHAIN_KINDS)}")
    if chain_password is not None and chain_user is None:
        raise ConfigError("--chain-password needs --chain-user (the RPC login it belongs to)")
    if chain_cookie is not None and chain_user is not None:
        raise ConfigError("give either --chain-cookie or --chain-user/--chain-password, not both")
    if chain_kind == "auto" and chain_cert is not None:
        chain_kind = "btcd"
    url = chain_url or DEFAULT_RPC_URL[("btcd" if chain_kind == "btcd" else "bitcoind", network)]
    if chain_cookie is not None:
        auth = f"cookie = {_q(chain_cookie)}   # Bitcoin Core's .cookie file"
    elif chain_user is not None:
        auth = f"user = {_q(chain_user)}\npassword = {_q(chain_password or '')}"
    else:
        cookie_dir = {"mainnet": "", "testnet": "testnet3/", "signet": "signet/", "regtest": "regtest/"}
        auth = f"cookie = {_q(Path('~/.bitcoin') / (cookie_dir[network] + '.cookie'))}"
    cert = f"cert = {_q(chain_cert)}" if chain_cert else '# cert = "~/.btcd/rpc.cert"   # btcd only'
    fallback = (
        "fallback_fee_rate = 2           # sat/vB used when the chain has no fee estimate"
        if network == "regtest"
        else "# fallback_fee_rate = 5         # sat/vB used when the chain has no fee estimate"
    )
    return _TEMPLATE.format(
        network=network,
        data_dir=_q(data_dir),
        kind=chain_kind,
        url=_q(url),
        auth=auth,
        cert=cert,
        birthday=birthday,
        fallback_fee=fallback,
    )


def write_config(path: Path, text: str, force: bool = False) -> None:
    """Write ``text`` to ``path`` (mode 0600: it may hold the RPC password).

    Refuses to overwrite an existing file unless ``force``. The text is
    validated first, so a config we write is always one we can read.
    """
    parse_config(tomllib.loads(text), path)
    _check_config_target(path, force)
    try:
        write_private_file(path, text.encode())
    except OSError as exc:
        raise ConfigError(f"cannot write the config {path}: {why(exc)}") from None


def _check_config_target(path: Path, force: bool) -> None:
    kind = path_kind(path, "config file", ConfigError)
    if kind is not PathKind.MISSING and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    if kind not in (PathKind.MISSING, PathKind.FILE):
        raise ConfigError(f"config file {path} is a {kind.value}; --config must name a file")


def init_config(
    path: Path | str | None,
    network: str,
    data_dir: Path | None = None,
    force: bool = False,
    **chain: Any,
) -> Config:
    """``l2custody init``: write a starting config and create the data dir (0700).

    ``chain`` takes render_config's chain_* keywords. Returns the loaded config.
    """
    path = resolve_config_path(path)
    if network not in NETWORKS:
        raise ConfigError(f"unknown network {network!r}; use one of {', '.join(NETWORKS)}")
    data_dir = user_path(data_dir or default_data_dir(network), "--data-dir", ConfigError)
    for option in ("chain_cookie", "chain_cert"):
        if chain.get(option) is not None:
            chain[option] = user_path(chain[option], f"--{option.replace('_', '-')}", ConfigError)
    text = render_config(network, data_dir, **chain)
    _check_config_target(path, force)
    try:  # the data dir first: a config pointing at a data dir that cannot be is never left behind
        private_dir(data_dir)
    except OSError as exc:
        raise ConfigError(f"cannot use {data_dir} as the data directory: {why(exc)}") from None
    write_config(path, text, force=force)
    return load_config(path)
