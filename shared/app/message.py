"""Reading what an activity needs from Dataverse: the trimmed activity row, the message text and the contact."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shared.app.deps import Deps
from shared.app.whatsapp_content import MessageContent, content_of
from shared.domain import template
from shared.domain.context import activity_from_attributes
from shared.domain.errors import DataverseError, NotFound, PoisonMessage, TransientError
from shared.domain.models import ACTIVITY_ENTITY, ActivityRef, Contact
from shared.domain.whatsapp import RichContent, TemplateProblem
from shared.log import log_event

ACTIVITY_COLUMNS = {  # Web API column → the message attribute it stands for
    "msdyncrm_activityid": "msdyncrm_activityid",
    "_msdyncrm_contact_value": "msdyncrm_contact",
    "_msdyncrm_customerjourney_value": "msdyncrm_customerjourney",
    "_msdyncrm_customerjourneyiteration_value": "msdyncrm_customerjourneyiteration",
    "msdyncrm_entitytype": "msdyncrm_entitytype",
    "msdyncrm_entityid": "msdyncrm_entityid",
}
Contacts = Mapping[str, dict[str, Any]]  # prefetched contact rows by lower-case id


def read_activity(deps: Deps, row_id: str) -> ActivityRef:
    """The message was trimmed (> 192 KB, ``MessageMaxSizeExceeded``): read the row through the Web API."""
    log_event("activity.trimmed", activity_row=row_id)
    try:
        row = deps.dataverse.get_row(ACTIVITY_ENTITY, row_id, list(ACTIVITY_COLUMNS))
    except NotFound:
        raise PoisonMessage("activity_not_found", f"activity row {row_id} does not exist any more") from None
    return activity_from_attributes(row_id, {name: row.get(column) for column, name in ACTIVITY_COLUMNS.items()})


def prefetch_contacts(deps: Deps, activities: Sequence[ActivityRef]) -> Contacts | None:
    """Read the contacts of a batch with one In query per chunk (None: let each activity read its own)."""
    if len(activities) < 2:
        return None  # a single activity reads its contact directly
    config = deps.config
    select: dict[str, None] = dict.fromkeys([config.contact_phone_column, config.compliance_column])
    select.update(dict.fromkeys(_policy_columns(deps)))  # CONTACT_TIMEZONE_COLUMN (issue #14)
    try:
        for activity in activities:
            text, content = _message(deps, activity)
            select.update(dict.fromkeys([*template.contact_columns(text), *content.contact_columns]))
        return deps.dataverse.get_rows_in(
            "contact", "contactid", [a.contact_id for a in activities], list(select), formatted=True
        )
    except (DataverseError, TransientError, PoisonMessage):
        return None  # each activity will meet (and settle) the error on its own


def _message(deps: Deps, activity: ActivityRef) -> tuple[str, MessageContent]:
    """The body and the WhatsApp template columns, in one (cached) read."""
    body_column = deps.config.message_body_column
    columns = [body_column, *deps.config.template_columns.select()]
    try:
        row = deps.dataverse.get_row(activity.entity_type, activity.entity_id, columns, cache=True)
    except NotFound:
        raise PoisonMessage(
            "message_not_found", f"message row {activity.entity_id} of {activity.entity_type} does not exist"
        ) from None
    except DataverseError as error:
        if error.status == 400:
            raise PoisonMessage(
                "message_column_invalid",
                f"cannot read MESSAGE_BODY_COLUMN '{body_column}' from {activity.entity_type}: {error.message}",
            ) from None
        raise
    text = row.get(body_column) or ""
    if not isinstance(text, str):
        raise PoisonMessage("message_column_invalid", f"MESSAGE_BODY_COLUMN '{body_column}' is not a text column")
    return text, content_of(row, deps.config.template_columns)


def _contact_row(deps: Deps, activity: ActivityRef, select: list[str], contacts: Contacts | None) -> Mapping[str, Any]:
    try:
        if contacts is None:
            return deps.dataverse.get_row("contact", activity.contact_id, select, formatted=True)
        row = contacts.get(activity.contact_id.lower())
        if row is None:
            raise NotFound(404, "0x80040217", f"contact With Id = {activity.contact_id} Does Not Exist", "read")
        return row
    except NotFound:
        raise PoisonMessage("contact_not_found", f"contact {activity.contact_id} does not exist") from None
    except DataverseError as error:
        if error.status == 400:
            raise PoisonMessage("contact_column_invalid", f"cannot read contact columns: {error.message}") from None
        raise


def load_message_and_contact(
    deps: Deps, activity: ActivityRef, contacts: Contacts | None = None
) -> tuple[str, Contact]:
    """The personalised text and the contact; poison when the message, its column or the contact can't exist."""
    text, contact, _ = load_message(deps, activity, contacts)
    return text, contact


def load_message(
    deps: Deps, activity: ActivityRef, contacts: Contacts | None = None
) -> tuple[str, Contact, RichContent | TemplateProblem | None]:
    """The personalised text, the contact and the rendered WhatsApp template / media (issue #17)."""
    config = deps.config
    raw_text, content = _message(deps, activity)
    columns = list(dict.fromkeys([*template.contact_columns(raw_text), *content.contact_columns]))
    select = list(dict.fromkeys([config.contact_phone_column, config.compliance_column, *columns]))
    select += [c for c in _policy_columns(deps) if c not in select]  # CONTACT_TIMEZONE_COLUMN (issue #14)
    row = _contact_row(deps, activity, select, contacts)
    values = {c: _display(row, c) for c in columns}
    phone = row.get(config.contact_phone_column)
    contact = Contact(
        contact_id=activity.contact_id,
        phone=None if phone is None else str(phone),
        opted_out=row.get(config.compliance_column) is True,
        values=values,
        zone=row.get(config.policy.timezone_column) if config.policy.timezone_column else None,
    )
    unknown = template.unknown_placeholders(raw_text)
    if unknown:
        log_event("template.unknown_placeholders", logging.WARNING, count=unknown, **activity_ids(activity))
    return template.render(raw_text, values), contact, content.render(values)


def activity_ids(activity: ActivityRef) -> dict[str, str]:
    """The correlation ids every activity log line carries."""
    return {"activity_row": activity.row_id, "activity_id": activity.activity_id, "journey_id": activity.journey_id}


def _display(row: Mapping[str, Any], column: str) -> str:
    formatted = row.get(f"{column}@OData.Community.Display.V1.FormattedValue")
    if formatted is not None:
        return str(formatted)
    value = row.get(column)
    return "" if value is None else str(value)


def set_opted_out(deps: Deps, activity: ActivityRef, reason: str) -> None:
    """Set the contact's compliance column (a STOP reply, or the provider reports the number opted out)."""
    column = deps.config.compliance_column
    deps.dataverse.update_row("contact", activity.contact_id, {column: True})
    log_event("contact.opted_out", reason=reason, column=column, **activity_ids(activity))


def _policy_columns(deps: Deps) -> list[str]:
    column = deps.config.policy.timezone_column
    return [column] if column else []
