"""SMS encoding and segment count of a rendered text (pure; billing is per segment).

GSM-7 (3GPP TS 23.038): the basic table costs one septet per character, the extension table (``^ { } \\ [ ~ ] | €``
and form feed) two (an escape plus the character). One message holds 160 septets; a concatenated one 153 per part
(the user data header takes 7), and an escape pair is never split across parts. Any other character forces UCS-2:
70 UTF-16 code units in one message, 67 per part, and a surrogate pair (an emoji) is two units that are never split.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}

# Characters that force UCS-2 but have a GSM-7 look-alike (SMS_GSM_NORMALIZE=true).
LOOK_ALIKES = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark (the curly apostrophe)
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",  # prime
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',  # double prime
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # horizontal ellipsis
    "\u00a0": " ",  # no-break space
    "\u2007": " ",  # figure space
    "\u2009": " ",  # thin space
    "\u200a": " ",  # hair space
    "\u202f": " ",  # narrow no-break space
    "\u2002": " ",  # en space
    "\u2003": " ",  # em space
}


@dataclass(frozen=True)
class Segments:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def _is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _cost(ch: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1  # outside the BMP: a surrogate pair


def count(text: str) -> Segments:
    """Encoding, units and segments of ``text`` (an empty text is one segment)."""
    encoding = "GSM-7" if _is_gsm7(text) else "UCS-2"
    costs = [_cost(ch, encoding) for ch in text]
    units = sum(costs)
    if units <= SINGLE[encoding]:
        return Segments(encoding, units, 1)
    part, used, parts = PART[encoding], 0, 1
    for cost in costs:  # an escape pair or a surrogate pair never straddles two parts
        if used + cost > part:
            parts, used = parts + 1, 0
        used += cost
    return Segments(encoding, units, parts)


def normalize_gsm(text: str) -> str:
    """Replace the look-alikes above; anything else is kept (it may still force UCS-2, e.g. an emoji)."""
    return "".join(LOOK_ALIKES.get(ch, ch) for ch in text)
