"""Paths as a careless operator or an attacker gives them (issue 11, class 4).

Every path an operator gives goes through ``l2custody.user_paths`` (``~`` expanded, an
unknown user, an empty path, a NUL or a name too long refused) and every file we write
through ``private_files.write_private_file`` (atomic, 0600, no temporary file left
behind). The table below runs every path option of every command with each bad path;
the completeness test keeps it covering options added later.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import click
import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.errors import ConfigError, UsageError
from l2custody.private_files import private_dir, write_private_file
from l2custody.user_paths import PathKind, existing_file, is_existing_file, path_kind, user_path
from tests.support.cli_runner import fails, init_regtest, invoke, ok, run

settings.register_profile("l2custody", max_examples=300, deadline=None, derandomize=True)
settings.load_profile("l2custody")

#: Every path option or argument of the CLI, with the argv that reaches it ({P}: the path).
PATH_ARGUMENTS: dict[tuple[str, str], list[str]] = {
    ("init", "chain_cookie"): ["init", "--network", "regtest", "--chain-cookie", "{P}", "--force"],
    ("init", "chain_cert"): ["init", "--network", "regtest", "--chain-cert", "{P}", "--force"],
    ("init", "data_dir"): ["init", "--network", "regtest", "--data-dir", "{P}", "--force"],
    ("wallet import", "source"): ["wallet", "import", "{P}"],
    ("wallet send", "out"): ["wallet", "send", "bcrt1qxyz", "1000sat", "--out", "{P}"],
    ("wallet migrate", "out_dir"): ["wallet", "migrate", "--out-dir", "{P}"],
    ("wallet refresh", "out"): ["wallet", "refresh", "--out", "{P}"],
    ("wallet recover", "out"): ["wallet", "recover", "--key", "k", "--to", "bcrt1qxyz", "--out", "{P}"],
    ("psbt show", "file"): ["psbt", "show", "{P}"],
    ("psbt verify", "file"): ["psbt", "verify", "{P}"],
    ("psbt sign", "file"): ["psbt", "sign", "{P}", "--signer", "a"],
    ("psbt sign", "out"): ["psbt", "sign", "{P}", "--signer", "a", "--out", "{P}"],
    ("psbt combine", "files"): ["psbt", "combine", "{P}"],
    ("psbt combine", "out"): ["psbt", "combine", "{P}", "--out", "{P}"],
    ("psbt finalize", "file"): ["psbt", "finalize", "{P}"],
    ("psbt finalize", "out"): ["psbt", "finalize", "{P}", "--out", "{P}"],
    ("psbt broadcast", "file"): ["psbt", "broadcast", "{P}"],
    ("psbt export", "out"): ["psbt", "export", "0123", "--out", "{P}"],
    ("signer add", "software"): ["signer", "add", "s1", "--software", "{P}"],
    ("signer add", "file_dir"): ["signer", "add", "s2", "--file-dir", "{P}"],
    ("node add", "tls_cert"): ["node", "add", "n1", "--lnd", "--host", "127.0.0.1:10009", "--tls-cert", "{P}"],
    ("node add", "macaroon"): ["node", "add", "n1", "--lnd", "--host", "127.0.0.1:10009", "--macaroon", "{P}"],
    ("node add", "rpc_file"): ["node", "add", "n2", "--cln", "--rpc-file", "{P}"],
    ("node enforce", "macaroon"): ["node", "enforce", "n1", "--macaroon", "{P}"],
    ("node macaroon", "out"): ["node", "macaroon", "n1", "--out", "{P}"],
    ("channel batch", "file"): ["channel", "batch", "{P}"],
    ("", "config"): ["--config", "{P}", "report"],
}


def _is_path(param: click.Parameter) -> bool:
    func = getattr(param.type, "func", None)
    return type(param.type).__name__ == "TyperPath" or getattr(func, "__name__", "") == "path"


def _path_params() -> set[tuple[str, str]]:
    from l2custody.cli import main

    main._register()
    found: set[tuple[str, str]] = set()

    def walk(cmd: click.Command, path: str) -> None:
        for p in cmd.params:
            if _is_path(p) or p.name == "source":
                found.add((path, p.name or ""))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(main.app), "")
    return found


def test_the_table_covers_every_path_option_of_the_cli() -> None:
    assert _path_params() - set(PATH_ARGUMENTS) == set()


def test_every_path_option_is_read_by_our_parser_which_refuses_an_empty_path(tmp_path: Path) -> None:
    from l2custody.cli import main

    loose = []

    def walk(cmd: click.Command, name: str) -> None:
        loose.extend(f"{name} {p.name}" for p in cmd.params if type(p.type).__name__ == "TyperPath")
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{name} {sub_name}")

    main._register()
    walk(typer.main.get_command(main.app), "l2custody")
    assert not loose, loose
    for key, argv in PATH_ARGUMENTS.items():
        if key[1] == "source":
            continue  # text or a file: an empty one is "nothing to import"
        argv = [a.replace("{P}", "") for a in argv]
        if argv[0] != "--config":
            argv = ["--config", str(tmp_path / "c.toml"), *argv]
        result = invoke(["--json", *argv])
        assert result.exit_code != 0, (key, result.output)
        err = json.loads(result.stdout.strip().splitlines()[-1])
        assert err["kind"] == "usage" and "path is empty" in err["error"], (key, err)


@pytest.fixture()
def bad_paths(tmp_path: Path) -> dict[str, str]:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    regular = tmp_path / "regular"
    regular.write_text("x")
    unreadable = tmp_path / "closed"
    unreadable.mkdir()
    (unreadable / "x").write_text("x")
    unreadable.chmod(0)
    return {
        "a name over 255 bytes": "d" * 300,
        "a symlink loop": str(loop),
        "a path through a symlink loop": str(loop / "x"),
        "a path through a regular file": str(regular / "x"),
        "an unknown user's home": "~nosuchuser/x",
        "a folder without access": str(unreadable / "x"),
    }


@pytest.mark.parametrize("key", sorted(PATH_ARGUMENTS, key=str))
def test_every_path_option_gives_a_typed_error_for_every_bad_path(
    tmp_path: Path, bad_paths: dict[str, str], key: tuple[str, str]
) -> None:
    config = init_regtest(tmp_path / "home")
    for what, bad in bad_paths.items():
        argv = [a.replace("{P}", bad) for a in PATH_ARGUMENTS[key]]
        if argv[0] != "--config":
            argv = ["--config", str(tmp_path / "other.toml" if argv[0] == "init" else config), *argv]
        result = run(Path(argv[1]), *argv[2:], json_out=True)  # no traceback: run() would raise
        if result.exit_code == 0:
            continue  # e.g. a cookie that bitcoind has not written yet
        assert '"kind"' in result.stdout, (what, argv, result.output)
        assert "Traceback" not in result.output


def test_user_path_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no user 'nosuchuser'"):
        user_path("~nosuchuser/key", "--software", UsageError)
    with pytest.raises(UsageError, match="too long to be a path"):
        user_path("x" * 256, "--software", UsageError)
    with pytest.raises(UsageError, match="empty"):
        user_path("  ", "--software", UsageError)
    with pytest.raises(UsageError, match="NUL"):
        user_path("a\x00b", "--software", UsageError)
    assert user_path("~/k", "key", UsageError) == Path.home() / "k"
    assert user_path("k", "key", UsageError, relative_to=tmp_path) == tmp_path / "k"


@given(st.text(max_size=400))
def test_user_path_gives_an_absolute_path_or_a_typed_error(text: str) -> None:
    try:
        path = user_path(text, "the file", ConfigError)
    except ConfigError:
        return
    assert path.is_absolute()


@given(st.text(max_size=5000))
def test_text_or_a_file_never_raises(text: str) -> None:
    assert is_existing_file(text) in (True, False)


def test_path_kind_tells_a_loop_and_a_file_in_the_way_from_a_missing_file(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    (tmp_path / "f").write_text("x")
    assert path_kind(tmp_path / "none", "x", ConfigError) is PathKind.MISSING
    assert path_kind(tmp_path, "x", ConfigError) is PathKind.DIRECTORY
    with pytest.raises(ConfigError, match="symbolic link loop"):
        path_kind(loop, "the file", ConfigError)
    with pytest.raises(ConfigError, match="a part of the path is a file"):
        path_kind(tmp_path / "f" / "g", "the file", ConfigError)
    with pytest.raises(ConfigError, match="is a directory, not a file"):
        existing_file(tmp_path, "the key file", ConfigError)


# --- files we write: atomic, private, nothing left behind -------------------------------
def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    with pytest.raises(IsADirectoryError):
        write_private_file(tmp_path / "target", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_a_written_file_is_private_and_exclusive_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "key"
    write_private_file(target, b"one", exclusive=True, durable=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        write_private_file(target, b"two", exclusive=True)
    write_private_file(target, b"three")
    assert target.read_bytes() == b"three"
    assert sorted(p.name for p in target.parent.iterdir()) == ["key"]


def test_private_dir_refuses_what_cannot_be_a_folder(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    (tmp_path / "f").write_text("x")
    for bad in (loop, tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(OSError) as raised:
            private_dir(bad)
        assert raised.value.errno in (errno.ELOOP, errno.ENOTDIR)


def test_init_with_a_data_dir_that_is_a_file_leaves_no_config_behind(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    config = tmp_path / "c.toml"
    err = fails(config, "init", "--network", "regtest", "--data-dir", str(tmp_path / "file"), code=11)
    assert "cannot use" in err["error"] and "data directory" in err["error"]
    assert not config.exists()


def test_init_force_onto_a_directory_is_refused_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "conf"
    target.mkdir()
    err = fails(target, "init", "--network", "regtest", "--data-dir", str(tmp_path / "d"), "--force", code=11)
    assert "is a directory" in err["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]
    assert list(target.iterdir()) == []


def test_a_chain_password_without_a_user_is_refused_not_dropped(tmp_path: Path) -> None:
    err = fails(tmp_path / "c.toml", "init", "--network", "regtest", "--chain-password", "pw", code=11)
    assert "--chain-user" in err["error"] and "pw" not in err["error"]


def test_a_long_descriptor_is_read_as_text_not_as_a_file_name(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    err = fails(config, "wallet", "import", "wsh(sortedmulti(2," + "x" * 400 + "))", code=20)
    assert "too long" not in err["error"] and "File name" not in err["error"]


def test_a_path_to_no_wallet_file_says_so(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    err = fails(config, "wallet", "import", str(tmp_path / "nowhere.json"), code=20)
    assert "does not exist" in err["error"] or "No such file" in err["error"], err


def test_a_generated_key_of_a_refused_signer_is_removed(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    key = tmp_path / "keys" / "k1.txt"
    ok(config, "signer", "add", "alice", "--software", str(key), "--generate")
    again = tmp_path / "keys" / "k2.txt"
    err = fails(config, "signer", "add", "alice", "--software", str(again), "--generate")
    assert "already exists" in err["error"]
    assert not again.exists() and key.exists()
