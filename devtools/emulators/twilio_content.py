"""Twilio Content API templates in the Twilio emulator (issue #17): ``ContentSid`` + ``ContentVariables``.

A content template is registered with :meth:`TwilioEmulator.add_content` (its text with ``{{1}}`` / ``{{name}}``
variables). A send with ``ContentSid`` must name a registered template (error 21655 otherwise), ``ContentVariables``
must be a JSON object of strings (21656), and every variable of the template must be given (21656); the delivered
text is the template with its variables filled. Quick-reply button taps arrive on the inbound webhook with
``ButtonPayload`` / ``ButtonText`` (and ``Body`` = the button text). Stdlib only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
INVALID_CONTENT_SID = 21655
INVALID_CONTENT_VARIABLES = 21656


def render_content(
    content_sid: str, variables_json: str, contents: Mapping[str, str]
) -> tuple[tuple[int, str] | None, str]:
    """(error code and message, or None; the text delivered to the handset)."""
    template = contents.get(content_sid) if _CONTENT_SID.match(content_sid) else None
    if template is None:
        return (INVALID_CONTENT_SID, f"The Content SID {content_sid[:40]} is invalid."), ""
    try:
        variables = json.loads(variables_json) if variables_json else {}
    except ValueError:
        variables = None
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        return (INVALID_CONTENT_VARIABLES, "The ContentVariables Parameter is invalid."), ""
    missing = [name for name in _VARIABLE.findall(template) if not str(variables.get(name, "")).strip()]
    if missing:
        return (INVALID_CONTENT_VARIABLES, f"The ContentVariables Parameter is missing variable {missing[0]}."), ""
    return None, _VARIABLE.sub(lambda m: str(variables[m.group(1)]), template)


def button_params(payload: str, text: str) -> dict[str, str]:
    """The extra inbound-webhook parameters of a quick-reply button tap."""
    return {"ButtonPayload": payload, "ButtonText": text}
