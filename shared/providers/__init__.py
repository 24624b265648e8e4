"""Provider modules. Each one implements :class:`shared.ports.Provider` and passes tests/contract."""
