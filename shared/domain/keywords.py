"""Classify an inbound reply: an opt-out word, or a trigger keyword (first word, lower-cased, no punctuation)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
OPT_OUT_KEYWORD = "stop"


@dataclass(frozen=True)
class Reply:
    keyword: str  # what goes into TriggerKeyword ("" when the reply has no word at all)
    opt_out: bool


def classify_reply(text: str, opt_out_words: Collection[str]) -> Reply:
    words = [w for w in (_NOT_WORD.sub("", token) for token in text.split()) if w]
    first = words[0].lower() if words else ""
    # The first word decides, like every other keyword: "Stop.", "STOP please" and "stop sending" all opt out.
    # Erring towards honouring an opt-out is the compliant choice (a missed STOP is worse than a lost contact).
    if first in opt_out_words:
        return Reply(OPT_OUT_KEYWORD, True)
    return Reply(first[:100], False)
