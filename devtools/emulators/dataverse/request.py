"""One Web API operation as the handlers see it (a plain request or one part of a ``$batch``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.errors import DataverseError

if TYPE_CHECKING:
    from devtools.emulators._base import Response
    from devtools.emulators.dataverse.server import DataverseEmulator


@dataclass
class Call:
    method: str
    resource: str  # path after /api/data/v9.2/, percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    in_batch: bool

    @property
    def prefer(self) -> str:
        return self.headers.get("prefer", "")

    def json_body(self, *, allow_empty: bool = False) -> dict[str, Any]:
        if not self.body.strip():
            if allow_empty:
                return {}
            raise DataverseError(400, errors.ODATA, "The request body is empty; a JSON object was expected.")
        try:
            value = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataverseError(400, errors.ODATA, f"Invalid JSON. {exc}") from None
        if not isinstance(value, dict):
            raise DataverseError(
                400,
                errors.ODATA,
                "An unexpected 'StartArray' node was found when reading from the JSON reader. "
                "A 'StartObject' node was expected.",
            )
        return value


def method_not_allowed(method: str) -> DataverseError:
    return DataverseError(405, errors.ODATA, f"The requested resource does not support http method '{method}'.")


# A route handler: the emulator, the operation and the route's match (named groups: set, key, entity, id, …).
Handler = Callable[["DataverseEmulator", Call, "re.Match[str]"], "Response"]
