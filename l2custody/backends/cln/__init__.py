"""The Core Lightning backend: pyln-client JSON-RPC, translated at the edge."""
