"""How triage compares text: as a person reads it, not as the phone encoded it."""

from __future__ import annotations

import unicodedata


def normalised(text: str) -> str:
    """`text` with compatibility forms unified (full-width `Ｋ１２３＋４５６`, as Chinese
    keyboards type it, is `K123+456`), and nothing else: for patterns that judge case and
    spacing themselves."""
    return unicodedata.normalize("NFKC", text)


def fold(text: str) -> str:
    """`text` as compared with keywords and other reports: compatibility forms unified
    (full-width `ＦＩＲＥ` and `Ｋ１２３＋４５６`, as Chinese keyboards type them, are
    `fire` and `K123+456`), case folded, a phone's curly apostrophe straight ("wasn’t"),
    and every run of spaces or line breaks one space. Traditional characters stay as
    written: a rule file lists those it wants."""
    return " ".join(normalised(text).casefold().replace("\u2019", "'").split())
