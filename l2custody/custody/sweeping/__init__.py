"""Force-close proceeds and other node hot-wallet coins swept back into the multisig."""
