"""Chain access: one ChainSource protocol, a JSON-RPC implementation, the block scanner."""
