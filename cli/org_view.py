"""How ``channel org list`` / ``show`` print registered orgs: a table, every field, or JSON. Secrets appear only as
the names of their Key Vault secrets (the table never holds a value)."""

from __future__ import annotations

from typing import Any

from shared.orgs.model import SECRET_SUFFIX, OrgConfigError, OrgRecord
from shared.orgs.registry import OrgRegistry

LIST_COLUMNS = ("ORG ID", "NAME", "ENABLED", "WEB API URL", "TENANT", "OVERRIDES")


def problems(record: OrgRecord, registry: OrgRegistry) -> list[str]:
    """Why the app could not use this row (a row edited outside ``channel org``), or nothing."""
    try:
        registry.validate(record)
    except OrgConfigError as exc:
        return str(exc).removeprefix(f"org {record.org_id}: ").split("; ")
    return []


def record_json(record: OrgRecord, registry: OrgRegistry) -> dict[str, Any]:
    errors = problems(record, registry)
    return {
        "org_id": record.org_id,
        "name": record.display_name,
        "enabled": record.enabled,
        "web_api_url": record.web_api_url,
        "tenant_id": record.tenant_id,
        "updated_at": record.updated_at,
        "overrides": dict(sorted(record.overrides.items())),
        "secret_names": dict(sorted(record.secret_names.items())),
        "own_provider_credentials": record.own_provider_credentials,
        "valid": not errors,
        "problems": errors,
    }


def list_table(records: list[OrgRecord]) -> str:
    if not records:
        return "no org registered (add one with 'channel org add')\n"
    rows = [
        (
            r.org_id,
            r.display_name or "-",
            "yes" if r.enabled else "no",
            r.web_api_url,
            r.tenant_id,
            str(len(r.overrides) + len(r.secret_names)),
        )
        for r in records
    ]
    widths = [max(len(LIST_COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(len(LIST_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [LIST_COLUMNS, *rows]
    ]
    return "\n".join(lines) + f"\n\n{len(records)} org(s)\n"


def describe(record: OrgRecord, registry: OrgRegistry) -> str:
    lines = [
        f"org id:        {record.org_id}",
        f"name:          {record.display_name or '-'}",
        f"enabled:       {'yes' if record.enabled else 'no (its activities are poisoned: unknown_organization)'}",
        f"Web API URL:   {record.web_api_url}",
        f"tenant:        {record.tenant_id}",
        f"updated at:    {record.updated_at or '-'}",
        "overrides:" + ("" if record.overrides else "     none (the deployment's settings)"),
        *(f"  {name} = {value}" for name, value in sorted(record.overrides.items())),
        "secrets:" + ("" if record.secret_names else "       none (the deployment's own)"),
        *(
            f"  {name}: Key Vault secret '{secret}' ({name}{SECRET_SUFFIX})"
            for name, secret in sorted(record.secret_names.items())
        ),
    ]
    if record.own_provider_credentials:
        lines.append(f"callbacks:     its own provider credentials: callback URLs carry ?org={record.org_id}")
    errors = problems(record, registry)
    lines.append("valid:         yes" if not errors else "valid:         NO, the app cannot use this row:")
    lines += [f"  {error}" for error in errors]
    return "\n".join(lines) + "\n"
