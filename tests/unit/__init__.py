"""Unit tests: no daemons (stand-ins named as such, real SQLite, real HTTP/gRPC servers on loopback)."""
