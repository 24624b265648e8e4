"""Settings of the reconciliation of ambiguous sends (issue #13; a mixin of :class:`shared.settings.Settings`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReconcileSettings(BaseModel):
    # How long after an ambiguous attempt's lease deadline the provider's view is trusted to be settled (a message
    # it accepted is listed by then); the provider is asked then. Providers that deduplicate a replay (ACS) are
    # asked earlier, inside their repeatability window. See docs/reconciliation.md.
    reconcile_after_seconds: float = Field(default=600.0, ge=30, le=86_400, validation_alias="RECONCILE_AFTER_SECONDS")
