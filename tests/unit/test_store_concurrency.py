"""Several processes opening one store at once: a new store, and an older one being
upgraded (``watch`` and a cron ``report`` starting together after an upgrade). Exactly
one process applies each migration; every process ends up on the newest schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from l2custody.migrations import MIGRATIONS
from l2custody.store import Store

OPEN = "import sys\nfrom l2custody.store import Store\nprint(Store.open(sys.argv[1]).version)"


def open_at_once(path: Path, processes: int = 6) -> list[subprocess.CompletedProcess[str]]:
    started = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    done = []
    for proc in started:
        out, err = proc.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_first_use_of_a_new_store(tmp_path: Path, round_: int) -> None:
    results = open_at_once(tmp_path / f"new-{round_}.sqlite")
    assert all(r.returncode == 0 for r in results), [r.stderr[-400:] for r in results if r.returncode]
    assert {r.stdout.strip() for r in results} == {str(len(MIGRATIONS))}


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_upgrade_of_an_older_store(tmp_path: Path, round_: int) -> None:
    path = tmp_path / f"old-{round_}.sqlite"
    with Store.open(path, migrations=MIGRATIONS[:2]) as old:
        old.audit("test", "before-upgrade", "store", {})
    results = open_at_once(path)
    assert all(r.returncode == 0 for r in results), [r.stderr[-400:] for r in results if r.returncode]
    with Store.open(path) as store:
        assert store.version == len(MIGRATIONS)
        assert [e.action for e in store.audit_log()] == ["before-upgrade"]  # nothing lost, nothing twice
