"""Cutting text into what the avatar says: whole texts (:func:`split_sentences`) and streams (:class:`Segmenter`).

Sentence boundaries come from sentencex (Wikimedia's rule-based segmenter: about 300 languages, CJK
included, fast, kept up): unlike a regular expression it knows abbreviations ("Mr. Smith"), decimals
("3.5") and initials. Its input goes through a shadow copy whose non-ASCII spaces are ASCII spaces
(the same number of characters): its Rust core panics on a capital, a multi-byte space and a period
in a row. A sentence longer than ``clause_chars`` is cut at its last clause boundary (``,;:``, CJK
``，、；：``), one longer than ``max_chars`` at its last space (or hard, for text without spaces).

A stream's piece is complete when the segmenter has seen what follows its end, or at once when it
ends with an unambiguous terminator (``! ? ！ ？ 。`` or a line break): a period may be an
abbreviation or a decimal point until the next character says otherwise.
"""

from __future__ import annotations

import re

from sentencex import segment

CHUNK_CHARS = 500  # longest text sent to A2E in one speak
CLAUSE_CHARS = 200  # a stream's unfinished sentence longer than this is cut at a clause boundary
_MIN_CLAUSE = 40  # never cut a clause shorter than this off a long sentence

_NON_ASCII_SPACE = re.compile(r"[^\S\x00-\x7f]")
_CANDIDATE = re.compile(r"[.!?\n\u2026\u3002\uff01\uff1f\uff61\u0964\u061f]")
_CLAUSE = re.compile(r"[,;:](?=\s)|[\uff0c\u3001\uff1b\uff1a]|\s[\u2014\u2013]\s")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_EAGER = frozenset("!?\uff01\uff1f\u3002\uff61")
_CLOSERS = "\"')]}\u201d\u2019\u300d\u300f\u300b\uff09\u3011"
_CJK_STOPS = ("\u3002", "\uff01", "\uff1f")


def language_of(text: str) -> str:
    """The segmenter's rules for ``text``, by script: Japanese, Korean, Chinese, else English (whose
    rules also serve the other space-separated languages the avatars speak)."""
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    return "zh" if _HAN.search(text) else "en"


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences, each with its trailing space: ``"".join(result) == text``."""
    if not text:
        return []
    shadow = _NON_ASCII_SPACE.sub(" ", text)
    try:
        lengths = [len(s) for s in segment(language_of(text), shadow)]
    except BaseException as exc:  # a Rust panic is a BaseException; never let one cost a room
        if type(exc).__name__ != "PanicException":
            raise
        return [text]
    cuts, start = [], 0
    for length in lengths:
        cuts.append(text[start:start + length])
        start += length
    if start < len(text):
        cuts.append(text[start:])
    return cuts


def _bounded(sentence: str, max_chars: int) -> list[str]:
    """A stripped sentence in pieces of at most ``max_chars``: at clauses, else spaces, else hard."""
    pieces = []
    sentence = sentence.strip()
    while len(sentence) > max_chars:
        window = sentence[:max_chars + 1]
        cut = max((m.end() for m in _CLAUSE.finditer(window) if m.end() <= max_chars), default=0)
        if cut < _MIN_CLAUSE:
            cut = window.rfind(" ")
        cut = cut if cut > 0 else max_chars
        head, sentence = sentence[:cut].strip(), sentence[cut:].strip()
        if head:
            pieces.append(head)
    if sentence:
        pieces.append(sentence)
    return pieces


def split_sentences(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_chars``, preferring sentence boundaries.

    Short sentences are packed together (fewer A2E calls); a longer sentence is cut as
    :func:`_bounded` does.
    """
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for sentence in (p for s in sentences(text) for p in _bounded(s, max_chars)):
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


def _ends_a_sentence(text: str) -> bool:
    """Whether ``text`` (the last thing a stream sent) certainly ends a sentence already."""
    text = text.rstrip(" \t\u3000")
    if text.endswith("\n"):
        return True
    return text.rstrip(_CLOSERS)[-1:] in _EAGER


def _sayable(piece: str) -> bool:
    return any(c.isalnum() for c in piece)


class Segmenter:
    """A stream's unfinished text, and the cut of what comes next into complete pieces.

    :meth:`cut` is pure (the relay checks that the pieces fit in the room's queue before it
    :meth:`commit`\\ s them), so a refused delta leaves the stream as it was.
    """

    def __init__(self, max_chars: int = CHUNK_CHARS, clause_chars: int = CLAUSE_CHARS) -> None:
        self.max_chars = max_chars
        self.clause_chars = clause_chars
        self.buffer = ""
        self._after_terminator = False  # the last piece was cut at once: drop its closing quotes

    def cut(self, text: str, *, final: bool = False) -> tuple[list[str], str]:
        """The complete pieces of the buffer plus ``text`` (every piece, with ``final``), and what stays buffered."""
        if not self.buffer and self._after_terminator:
            text = text.lstrip(_CLOSERS + " \t\u3000")
        buffered = self.buffer + text
        if not final and len(buffered) <= self.clause_chars and not _CANDIDATE.search(buffered):
            return [], buffered  # nothing can end a sentence yet: the common case, token after token
        parts = sentences(buffered)
        rest = ""
        if not final and parts:
            if _ends_a_sentence(parts[-1]):
                parts[-1] = parts[-1].rstrip()
            else:
                rest = parts.pop()
        pieces = [p for s in parts for p in _bounded(s, self.max_chars)]
        if len(rest) > self.clause_chars:  # a long sentence: say its clauses as they complete
            window = rest[:self.max_chars]
            cut = max((m.end() for m in _CLAUSE.finditer(window)), default=0)
            if cut < _MIN_CLAUSE and len(rest) > self.max_chars:
                cut = window.rfind(" ") if window.rfind(" ") > 0 else self.max_chars
            if cut >= _MIN_CLAUSE or len(rest) > self.max_chars:
                pieces.extend(_bounded(rest[:cut], self.max_chars))
                rest = rest[cut:].lstrip()
        return [p for p in pieces if _sayable(p)], rest

    def commit(self, pieces: list[str], rest: str) -> None:
        """Keep ``rest`` (from :meth:`cut`, with the ``pieces`` taken from it) as the unfinished text."""
        if rest:
            self._after_terminator = False
        elif pieces:
            self._after_terminator = True
        self.buffer = rest
