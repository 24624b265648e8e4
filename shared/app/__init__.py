"""The service layer: one module per use case, each a short function over :class:`shared.app.deps.Deps`.

A use case returns its outcome and the records whose items (interactions, notifications) are due; its caller adds
them to an :class:`shared.app.outbox.Outbox` and reports once (``$batch``). A single message is a batch of one.
"""
