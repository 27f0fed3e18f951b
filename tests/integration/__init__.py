"""Integration tests on the regtest harness: real btcd/lnd, and bitcoind/lightningd where present."""
