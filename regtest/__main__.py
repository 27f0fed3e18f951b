"""``python -m regtest``: see regtest/cli.py."""

from regtest.cli import main

main()
