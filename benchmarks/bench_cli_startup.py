"""Cold start of the installed ``l2custody`` command: ``--help`` and ``wallet balance``.

Each command runs as a fresh subprocess several times (the first run warms
the OS file cache and is not counted); min / median / max wall time is
printed. ``wallet balance`` runs against a throwaway config with a 2-of-3
wallet and reads the store only (no node). The script also reports which
heavy modules (grpc, pyln, embit, lndgrpc) the command imported: these
paths must not pay for gRPC or pyln.

Usage: .venv/bin/python benchmarks/bench_cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "l2custody"
HEAVY = ("grpc", "pyln", "lndgrpc", "embit", "google.protobuf")


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm-up, not counted
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        out.append(time.perf_counter() - start)
    return out


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    code = (
        "import sys\nfrom l2custody.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print('MODULES', ' '.join(sorted({{m.split('.')[0] for m in sys.modules if m.startswith({HEAVY!r})}})))"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES")]
    return line[-1].split()[1:] if line else ["?"]


def make_wallet(tmp: Path, env: dict[str, str]) -> None:
    def run(*args: str) -> str:
        return subprocess.run([str(BIN), "--json", *args], env=env, capture_output=True, text=True, check=True).stdout

    import json

    run("init", "--network", "regtest", "--data-dir", str(tmp / "data"), "--chain-user", "u", "--chain-password", "p")
    keys = []
    for name in ("a", "b", "c"):
        keys.append(json.loads(run("signer", "add", name, "--software", str(tmp / f"{name}.key"), "--generate"))["key"])
    run("wallet", "create", "-k", "2", *sum((["--key", k] for k in keys), []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "L2CUSTODY_CONFIG": str(Path(tmp) / "config.toml")}
        make_wallet(Path(tmp), env)
        python_only = timed([sys.executable, "-c", "pass"], env, args.runs)
        print(f"(python interpreter alone: median {statistics.median(python_only) * 1000:.0f} ms)")
        for label, argv in (("l2custody --help", ["--help"]), ("l2custody wallet balance", ["wallet", "balance"])):
            times = timed([str(BIN), *argv], env, args.runs)
            mods = heavy_imports(argv, env)
            print(
                f"{label}: min {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms, "
                f"max {max(times) * 1000:.0f} ms over {args.runs} runs; heavy modules imported: "
                f"{', '.join(mods) or 'none'}"
            )


if __name__ == "__main__":
    main()
