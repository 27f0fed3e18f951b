"""The multisig wallet: descriptor, addresses, PSBTs, signers. Knows nothing about Lightning."""
