"""Segment counts against known vectors (GSM-7 basic and extension tables, UCS-2 with surrogate pairs)."""

from __future__ import annotations

import pytest

from shared.domain.segments import count, normalize_gsm


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # an extension character counts double
        ("€" * 81, "GSM-7", 162, 2),
        ("[]{}" * 2, "GSM-7", 16, 1),
        ("a" * 152 + "€", "GSM-7", 154, 1),
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),  # the escape pair is not split: part 1 holds 152 septets
        ("a" * 305 + "€", "GSM-7", 307, 3),  # 305 + 2: the pair moves to a third part
        ("Hi Ada, your offer is ready.", "GSM-7", 28, 1),
        ("Ça coûte 5 €", "UCS-2", 12, 1),  # û is not in GSM-7
        ("é" * 160, "GSM-7", 160, 1),  # é is in the basic table
        ("\u2019" + "a" * 69, "UCS-2", 70, 1),  # one curly apostrophe turns the whole text into UCS-2
        ("\u2019" + "a" * 149, "UCS-2", 150, 3),  # 150 units: three parts of 67
        ("😀" * 35, "UCS-2", 70, 1),  # an emoji is one surrogate pair (two units)
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" + "😀" * 34, "UCS-2", 69, 1),
        ("a" * 66 + "😀" + "a" * 10, "UCS-2", 78, 2),  # the pair does not straddle parts: 66 | 2 + 10
        ("a" * 134 + "😀", "UCS-2", 136, 3),  # 67 + 67 then the pair alone
        ("", "GSM-7", 0, 1),
    ],
)
def test_known_vectors(text: str, encoding: str, units: int, segments: int) -> None:
    result = count(text)
    assert (result.encoding, result.units, result.segments) == (encoding, units, segments)


def test_normalize_replaces_look_alikes_and_keeps_the_rest() -> None:
    text = "\u201cHi\u201d \u2013 it\u2019s\u00a0here\u2026 😀"
    assert normalize_gsm(text) == '"Hi" - it\'s here... 😀'
    assert count(normalize_gsm("It\u2019s \u2014 ready\u2026")).encoding == "GSM-7"
    assert normalize_gsm("plain") == "plain"
