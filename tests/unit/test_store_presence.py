"""A store whose file was deleted or replaced while open refuses to write (SQLite would keep
writing to the unlinked file and lose everything); a caller can bound the wait on a lock."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from l2custody.errors import StoreError
from l2custody.store import Store


def test_writes_after_the_directory_is_deleted_are_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "d" / "s.sqlite")
    try:
        store.audit("t", "before", "x")
        shutil.rmtree(tmp_path / "d")
        with pytest.raises(StoreError, match="was deleted while l2custody had it open"):
            store.audit("t", "after", "x")
        with pytest.raises(StoreError, match="was deleted"), store.transaction():
            pass
    finally:
        store.close()


def test_writes_after_the_file_is_replaced_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store.open(path)
    try:
        shutil.copy(path, tmp_path / "copy")
        (tmp_path / "copy").replace(path)
        with pytest.raises(StoreError, match="was replaced by another file"):
            store.audit("t", "after", "x")
    finally:
        store.close()


def test_a_bounded_wait_on_a_locked_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store.open(path)
    store.set_busy_timeout(0.3)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked by another l2custody process"), store.transaction():
            pass
        assert time.monotonic() - started < 2.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()
