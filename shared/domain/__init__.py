"""Pure domain logic: no I/O, no Azure SDKs."""
