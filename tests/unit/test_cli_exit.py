"""How the ``l2custody`` console script ends (``l2custody.cli.main.run``): once a command has
finished cleanly it leaves without the interpreter's shutdown (gRPC's C-core shutdown costs
a tenth of a read command), with its output flushed and its exit code kept; a command that
leaves a thread running goes through the normal shutdown."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_with(body: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import atexit, sys, threading, time\n"
        "import l2custody.cli.main as cli\n"
        "atexit.register(lambda: print('NORMAL SHUTDOWN', flush=True))\n"
        f"def fake():\n{body}\n"
        "cli.main = fake\n"
        "cli.run()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("body", "code", "stdout", "stderr"),
    [
        ("    print('x' * 100000, end='')", 0, "x" * 100000, ""),
        ("    print('partial', end=''); sys.stderr.write('warn'); sys.exit(3)", 3, "partial", "warn"),
        ("    sys.exit('refused')", 1, "", "refused\n"),
        ("    sys.exit(None)", 0, "", ""),
    ],
    ids=["large output", "exit code", "exit message", "exit none"],
)
def test_a_finished_command_leaves_at_once_with_its_output_and_code(
    body: str, code: int, stdout: str, stderr: str
) -> None:
    proc = run_with(body)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == stdout and proc.stderr == stderr  # nothing lost, no atexit handlers ran


def test_a_thread_still_running_gets_the_normal_shutdown() -> None:
    proc = run_with("    threading.Thread(target=time.sleep, args=(0.2,)).start(); print('started')")
    assert proc.returncode == 0 and proc.stdout == "started\nNORMAL SHUTDOWN\n"


def test_an_unexpected_error_keeps_its_traceback() -> None:
    proc = run_with("    raise RuntimeError('bug')")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "RuntimeError: bug" in proc.stderr
    assert "NORMAL SHUTDOWN" in proc.stdout
