"""Durable records over a :class:`shared.ports.KeyValueStore`: one generic store, one codec per record type, and
the lookup indexes (keys built in one place)."""
