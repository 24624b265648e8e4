"""One send state machine shape for both contracts: the transitions the send-under-lease routine drives.

``shared.domain.state`` (outbound marketing) and ``shared.domain.rtj_state`` (real-time journeys) each provide the
pure functions; :data:`OUTBOUND` and :data:`RTJ` bundle them so ``shared.app.send`` is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.domain import rtj_state, state
from shared.domain.rtj_state import RtjState
from shared.domain.state import ActivityState

S = TypeVar("S")


@dataclass(frozen=True)
class SendMachine(Generic[S]):
    claim: Callable[..., S | None]  # (s, *, provider, lease_until, phone_masked): unsent → sending under a lease
    accepted: Callable[..., S]  # (s, *, provider, message_id): the provider took it
    rejected: Callable[..., S | None]  # (s, *, code, detail): refused for good
    released: Callable[..., S | None]  # (s, *, detail): certainly not taken, back to unsent
    ambiguous: Callable[..., S | None]  # (s, *, detail): may have been taken: never resent blindly
    # reconciliation of an ambiguous send (shared.app.reconcile, docs/reconciliation.md)
    reconcile_found: Callable[..., S | None]  # (s, *, provider, message_id, note): the provider holds it
    reconcile_claim: Callable[..., S | None]  # (s, *, provider, lease_until, phone_masked, note): send it now
    reconcile_deferred: Callable[..., S | None]  # (s, *, note): cannot tell: ask again later


def _machine(transitions: Any) -> Any:
    return SendMachine(
        transitions.claim,
        transitions.accepted,
        transitions.rejected,
        transitions.released,
        transitions.ambiguous,
        transitions.reconcile_found,
        transitions.reconcile_claim,
        transitions.reconcile_deferred,
    )


OUTBOUND: SendMachine[ActivityState] = _machine(state)
RTJ: SendMachine[RtjState] = _machine(rtj_state)
