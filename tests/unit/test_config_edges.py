"""Config files as an operator edits them (issue 11's property test over config values):
every key of every table given any TOML value — wrong types, NaN, infinity, huge
integers, dates, nested tables, arrays of mixed things, control characters, paths that
cannot be — gives a Config or one ConfigError naming the key, never a traceback."""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.config import parse_config, render_config
from l2custody.errors import ConfigError

settings.register_profile("l2custody", max_examples=300, deadline=None, derandomize=True)
settings.load_profile("l2custody")

BASE: dict[str, Any] = tomllib.loads(render_config("regtest", Path("/tmp/l2custody-test-data")))
KEYS = sorted(
    [(None, k) for k, v in BASE.items() if not isinstance(v, dict)]
    + [(table, k) for table, body in BASE.items() if isinstance(body, dict) for k in body]
    + [("chain", "cert"), ("chain", "user"), ("chain", "password"), ("chain", "password_file")]
    + [("watch", "sweep_fee_rate"), ("watch", "backup_dir"), ("alerts", "webhook_url"), ("alerts", "command")]
    + [("policy", "unknown_key"), (None, "typo")],
    key=str,
)

SCALARS = (
    st.text(max_size=40)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.booleans()
    | st.sampled_from(["", "~nosuchuser/x", "x" * 300, "\x00", "http://[::1", "https://u:p@h:99999"])
    | st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 1, 1))
    | st.dates()
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
)


@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=4))
def test_any_value_under_any_key_is_a_config_or_a_config_error(
    changes: list[tuple[tuple[str | None, str], Any]],
) -> None:
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for (table, key), value in changes:
        if table is None:
            data[key] = value
        elif isinstance(data.get(table), dict):
            data[table][key] = value
    try:
        parse_config(data, Path("/tmp/l2custody-test-config.toml"))
    except ConfigError as exc:
        assert "Traceback" not in exc.message


@given(st.sampled_from([t for t, body in BASE.items() if isinstance(body, dict)]), VALUES)
def test_a_table_replaced_by_any_value_is_a_config_error(table: str, value: Any) -> None:
    data = dict(BASE)
    data[table] = value
    try:
        parse_config(data, Path("/tmp/l2custody-test-config.toml"))
    except ConfigError:
        pass
