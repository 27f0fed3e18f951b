"""The lnd backend: gRPC with lndgrpc's compiled stubs, translated at the edge."""
