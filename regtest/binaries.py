"""Finding the daemon binaries, and building lnd and btcd when they are missing.

Order of preference for each binary: the path named by its environment
variable (``L2C_LND``, ``L2C_BTCD``, ...), then the same name on PATH, then
the build cache (``~/.cache/l2custody/bin/<name>-<version>/``, or
``$L2C_BIN_CACHE``), and only then a build with the Go toolchain from the Go
module proxy at the pinned version. A failed build names the step that failed
and the log holding its output.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from regtest.daemon import tail
from regtest.errors import BuildError, MissingBinary

LND_VERSION = "v0.20.1-beta"
LND_MODULE = "github.com/lightningnetwork/lnd"
LND_TAGS = "signrpc walletrpc chainrpc invoicesrpc peersrpc routerrpc"
BTCD_VERSION = "v0.25.0"
BTCD_MODULE = "github.com/btcsuite/btcd"

ENV_VARS = {
    "lnd": "L2C_LND",
    "lncli": "L2C_LNCLI",
    "btcd": "L2C_BTCD",
    "btcctl": "L2C_BTCCTL",
    "bitcoind": "L2C_BITCOIND",
    "bitcoin-cli": "L2C_BITCOIN_CLI",
    "lightningd": "L2C_LIGHTNINGD",
}


@dataclass(frozen=True)
class GoBuild:
    """A pinned Go build producing some binaries into one cache directory."""

    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.version}"


LND_BUILD = GoBuild("lnd", LND_VERSION, ("lnd", "lncli"))
BTCD_BUILD = GoBuild("btcd", BTCD_VERSION, ("btcd", "btcctl"))
_BUILD_OF = {b: build for build in (LND_BUILD, BTCD_BUILD) for b in build.binaries}


def bin_cache_dir() -> Path:
    """Where built binaries are cached: ``$L2C_BIN_CACHE`` or ``~/.cache/l2custody/bin``."""
    env = os.environ.get("L2C_BIN_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "l2custody" / "bin"


def find_binary(name: str) -> Path | None:
    """The binary to use for ``name`` without building anything, or None.

    Raises MissingBinary when the environment variable names a file that is
    not an executable: a typo there should not silently fall back to PATH.
    """
    var = ENV_VARS.get(name)
    if var and os.environ.get(var):
        path = Path(os.environ[var]).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise MissingBinary(f"{var}={path} is not an executable file; fix or unset {var}")
        return path
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    build = _BUILD_OF.get(name)
    if build is not None:
        cached = bin_cache_dir() / build.dirname / name
        if cached.is_file() and os.access(cached, os.X_OK):
            return cached
    return None


def missing_reason(name: str) -> str:
    """Why ``name`` is not available, for skip messages ('lightningd: not on PATH ...')."""
    var = ENV_VARS.get(name, "")
    return f"{name} (not on PATH and {var} is unset)" if var else f"{name} (not on PATH)"


def ensure(name: str) -> Path:
    """The binary for ``name`` (lnd, lncli, btcd, btcctl), building its package if needed."""
    found = find_binary(name)
    if found is not None:
        return found
    build = _BUILD_OF.get(name)
    if build is None:
        raise MissingBinary(f"{missing_reason(name)}; install it or name it with its variable")
    build_into_cache(build)
    return bin_cache_dir() / build.dirname / name


def ensure_go_daemons() -> dict[str, Path]:
    """Paths of lnd, lncli, btcd and btcctl, building what is missing (minutes the first time)."""
    return {name: ensure(name) for name in ("btcd", "btcctl", "lnd", "lncli")}


@contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    # Two test runs (or `make demo` beside `make test`) must not build the same
    # thing at once on a 2-core machine; the second waits and then finds it.
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_into_cache(build: GoBuild) -> Path:
    """Build ``build`` with Go into the cache directory; return that directory.

    Raises BuildError naming the failed step and the log file.
    """
    cache = bin_cache_dir()
    target = cache / build.dirname
    with _build_lock(cache):
        if all((target / b).is_file() for b in build.binaries):
            return target
        target.mkdir(parents=True, exist_ok=True)
        log = target / "build.log"
        go = shutil.which("go")
        if go is None:
            raise BuildError(
                f"cannot build {build.name} {build.version}: step 'find the Go toolchain' failed: "
                "`go` is not on PATH. Install Go 1.24 or newer (https://go.dev/dl/), or point "
                f"{ENV_VARS[build.binaries[0]]} at a prebuilt {build.binaries[0]} binary."
            )
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
        try:
            started = time.monotonic()
            if build is LND_BUILD:
                _build_lnd(go, staging, log)
            else:
                _build_btcd(go, staging, log)
            for name in build.binaries:
                os.replace(staging / name, target / name)
            _log(log, f"built {build.name} {build.version} in {time.monotonic() - started:.0f}s")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOWORK"] = "off"  # a developer's go.work must not change what we build
    return env


def _log(log: Path, text: str) -> None:
    with open(log, "a") as fh:
        fh.write(f"=== {time.strftime('%H:%M:%S')} {text}\n")


def _run(step: str, argv: list[str], cwd: Path, log: Path, env: dict[str, str]) -> str:
    """Run one build step, appending its output to ``log``; return its stdout."""
    _log(log, f"step '{step}': {' '.join(argv)} (in {cwd})")
    with open(log, "a") as fh:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=fh, stdin=subprocess.DEVNULL)
        out = proc.stdout.decode("utf-8", "replace")
        fh.write(out)
    if proc.returncode != 0:
        raise BuildError(
            f"build step '{step}' failed (exit {proc.returncode}). Full log: {log}\n"
            f"Last lines:\n{tail(log, 15)}\n"
            "Check that the Go toolchain works and that the Go module proxy is reachable, "
            "then run `python -m regtest build` again."
        )
    return out


def _build_btcd(go: str, out: Path, log: Path) -> None:
    env = _go_env() | {"GOBIN": str(out)}
    _run(
        f"go install btcd {BTCD_VERSION}",
        [go, "install", f"{BTCD_MODULE}@{BTCD_VERSION}", f"{BTCD_MODULE}/cmd/btcctl@{BTCD_VERSION}"],
        out,
        log,
        env,
    )


def _build_lnd(go: str, out: Path, log: Path) -> None:
    # lnd's go.mod carries `replace` directives, which `go install pkg@version`
    # refuses; so download the module and build inside its directory.
    env = _go_env()
    info = _run(
        f"go mod download {LND_MODULE}@{LND_VERSION}",
        [go, "mod", "download", "-json", f"{LND_MODULE}@{LND_VERSION}"],
        out,
        log,
        env,
    )
    try:
        moddir = Path(json.loads(info)["Dir"])
    except (ValueError, KeyError) as exc:
        raise BuildError(
            f"build step 'go mod download {LND_MODULE}@{LND_VERSION}' printed no module "
            f"directory ({exc}). Full log: {log}"
        ) from exc
    for cmd in ("lnd", "lncli"):
        _run(
            f"go build ./cmd/{cmd}",
            [go, "build", "-trimpath", "-tags", LND_TAGS, "-o", str(out / cmd), f"./cmd/{cmd}"],
            moddir,
            log,
            env,
        )
