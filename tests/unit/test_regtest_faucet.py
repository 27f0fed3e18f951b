"""The faucet's transaction building, checked with embit's own signature verification."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from embit import compact
from embit.ec import PrivateKey
from embit.script import Script, p2pkh_from_p2wpkh, p2tr, p2wsh
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from regtest import FaucetError
from regtest.faucet import (
    REGTEST,
    Coin,
    Faucet,
    is_coinbase,
    parse_block,
    regtest_script,
)

KEY = PrivateKey(bytes.fromhex("11" * 32))
OTHER = PrivateKey(bytes.fromhex("22" * 32)).get_public_key()


def _coins(*values: int) -> list[Coin]:
    return [Coin(f"{i:064x}", i % 3, v, 1, False) for i, v in enumerate(values, start=1)]


def _vsize(tx: Transaction) -> float:
    stripped = Transaction(
        tx.version, [TransactionInput(i.txid, i.vout, sequence=i.sequence) for i in tx.vin], tx.vout, tx.locktime
    )
    base = len(stripped.serialize())
    return (base * 3 + len(tx.serialize())) / 4


def test_regtest_addresses_of_every_kind_are_accepted() -> None:
    for script in (Script(b"\x00\x14" + bytes(20)), p2wsh(Script(b"\x51")), p2tr(OTHER)):
        assert regtest_script(script.address(REGTEST)) == script


@pytest.mark.parametrize(
    "address",
    [
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # mainnet
        "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",  # testnet
    ],
)
def test_addresses_of_other_networks_are_refused(address: str) -> None:
    with pytest.raises(FaucetError, match="not a regtest address"):
        regtest_script(address)


def test_garbage_is_refused() -> None:
    with pytest.raises(FaucetError, match="not a valid bitcoin address"):
        regtest_script("hello")


def test_build_pays_outputs_signs_inputs_and_returns_change() -> None:
    faucet = Faucet(KEY)
    dest = p2wsh(Script(b"\x51")).address(REGTEST)
    coins = _coins(30_000, 500_000, 80_000)
    tx = faucet.build(coins, [(dest, 450_000)], fee_rate=2.0)

    assert len(tx.vin) == 1  # the largest coin covers it
    assert tx.vout[0].value == 450_000 and tx.vout[0].script_pubkey == regtest_script(dest)
    assert tx.vout[1].script_pubkey == faucet.script
    fee = 500_000 - sum(o.value for o in tx.vout)
    assert 2.0 <= fee / _vsize(tx) < 2.5
    # every signature verifies against the BIP143 sighash of its input
    pub = KEY.get_public_key()
    for i, inp in enumerate(tx.vin):
        der, sec = inp.witness.items
        assert sec == pub.sec()
        from embit.ec import Signature

        sighash = tx.sighash_segwit(i, p2pkh_from_p2wpkh(faucet.script), 500_000)
        assert pub.verify(Signature.parse(der[:-1]), sighash)


def test_build_takes_more_coins_when_one_is_not_enough() -> None:
    faucet = Faucet(KEY)
    tx = faucet.build(_coins(60_000, 50_000, 40_000), [(faucet.address, 100_000)])
    assert len(tx.vin) == 2


def test_build_refuses_what_it_cannot_pay() -> None:
    faucet = Faucet(KEY)
    with pytest.raises(FaucetError, match="mine more blocks"):
        faucet.build(_coins(10_000), [(faucet.address, 20_000)])
    with pytest.raises(FaucetError, match="at least 546"):
        faucet.build(_coins(10_000), [(faucet.address, 100)])
    with pytest.raises(FaucetError, match="nothing to pay"):
        faucet.build(_coins(10_000), [])


def test_parse_block_reads_every_transaction_and_spots_the_coinbase() -> None:
    coinbase = Transaction(
        vin=[TransactionInput(bytes(32), 0xFFFFFFFF, Script(b"\x01\x01"))],
        vout=[TransactionOutput(50, Script(b"\x51"))],
    )
    spend = Transaction(vin=[TransactionInput(coinbase.txid(), 0)], vout=[TransactionOutput(40, Script(b"\x51"))])
    raw = bytes(80) + compact.to_bytes(2) + coinbase.serialize() + spend.serialize()
    txs = parse_block(raw)
    assert [t.txid() for t in txs] == [coinbase.txid(), spend.txid()]
    assert is_coinbase(txs[0]) and not is_coinbase(txs[1])
    assert Transaction.read_from(io.BytesIO(spend.serialize())).vin[0].txid == coinbase.txid()


def test_key_file_is_private_and_reloads_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "faucet.key"
    first = Faucet.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Faucet.load_or_create(path).address == first.address
    assert first.address.startswith("bcrt1q")
