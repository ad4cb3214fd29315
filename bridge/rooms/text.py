"""Splitting long text at sentence boundaries before it is queued.

A regular expression is enough here: the avatar only needs chunks that end where a speaker would
pause, and a full sentence tokenizer (pysbd, nltk) would be a heavy dependency for that.
"""

from __future__ import annotations

import re

# A sentence ends at . ! ? or their CJK forms (optionally followed by quotes/brackets) then space,
# or at a CJK terminator directly.
_BOUNDARY = re.compile(r"(?<=[.!?\u2026][\"'\u201d\u2019)\]])\s+|(?<=[.!?\u2026])\s+|(?<=[\u3002\uff01\uff1f])")


_CJK_STOPS = ("\u3002", "\uff01", "\uff1f")


def split_sentences(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_chars``, preferring sentence boundaries.

    Short sentences are packed together; a sentence longer than ``max_chars`` is cut at the
    last space (or hard, for text without spaces).
    """
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for sentence in (s.strip() for s in _BOUNDARY.split(text)):
        if not sentence:
            continue
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars + 1)
            cut = cut if cut > 0 else max_chars
            head, sentence = sentence[:cut].strip(), sentence[cut:].strip()
            if current:
                chunks.append(current)
                current = ""
            chunks.append(head)
        separator = "" if current.endswith(_CJK_STOPS) else " "  # CJK text has no spaces between sentences
        joined = f"{current}{separator}{sentence}" if current else sentence
        if len(joined) <= max_chars:
            current = joined
        else:
            chunks.append(current)
            current = sentence
    if current:
        chunks.append(current)
    return chunks
