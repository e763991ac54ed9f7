"""Text cleaning and sentence splitting, shared by every corpus.

- :func:`clean_text` normalises Unicode to NFC, turns every run of whitespace
  (including non-breaking spaces and line separators) into one space inside a
  paragraph, drops control and zero-width characters, and strips the ends.
- :func:`split_sentences` is a rule-based splitter for English-like text: a
  sentence ends at ``.``, ``!`` or ``?`` (with any closing quotes or brackets)
  followed by whitespace and an upper-case letter, a digit or an opening quote,
  unless the word before the full stop is a known abbreviation (``Mr.``,
  ``e.g.``, ``St.``), a single letter (an initial: ``J. R. R. Tolkien``) or a
  roman numeral-like initial. Chinese text splits after ``。！？``.

The rules are deliberately simple and documented so that every model sees the
same sentences; they are not a full sentence-boundary detector.
"""

from __future__ import annotations

import re
import unicodedata

_CONTROL = {"Cc", "Cf"}
_KEEP_CONTROL = {"\n", "\t"}

ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al approx ca c no nos vol vols fig figs
    jan feb mar apr jun jul aug sep sept oct nov dec gen col lt sgt capt cmdr adm gov rev hon
    inc ltd co corp dept univ est op pp ed eds trans u.s u.k u.n a.d b.c b.c.e c.e""".split()
)

_SENTENCE_END = re.compile(r"""([.!?]+)(["'”’)\]]*)(\s+)(?=["'“‘(\[]?[A-Z0-9À-ÖØ-Þ])""")
_ZH_END = re.compile(r"([。！？]+)([”」』）]*)")
_WS = re.compile(r"[^\S\n]+")


def clean_text(text: str) -> str:
    """NFC, no control or zero-width characters, single spaces; newlines kept as paragraph breaks."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        ch for ch in text
        if ch in _KEEP_CONTROL or unicodedata.category(ch) not in _CONTROL
    )
    text = text.replace("\t", " ")
    lines = [_WS.sub(" ", line).strip() for line in text.split("\n")]
    # collapse runs of blank lines into one paragraph break
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _is_abbreviation(before: str) -> bool:
    word = before.rsplit(None, 1)[-1] if before.strip() else ""
    word = word.lstrip("\"'“‘([").rstrip(".").lower()
    if not word:
        return False
    if word in ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith", "arthur c. clarke"
        return True
    if re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):  # "u.s", "e.g"
        return True
    return False


def split_sentences(text: str) -> list[str]:
    """Split a paragraph (or several, separated by newlines) into sentences."""
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if _ZH_END.search(paragraph) and not re.search(r"[A-Za-z]{3,}", paragraph):
            parts = _ZH_END.sub(lambda m: m.group(0) + "\n", paragraph).split("\n")
            sentences.extend(p.strip() for p in parts if p.strip())
            continue
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            end = match.end(2)
            if match.group(1) == "." and _is_abbreviation(paragraph[start:match.start(1)]):
                continue
            piece = paragraph[start:end].strip()
            if piece:
                sentences.append(piece)
            start = match.end(3)
        tail = paragraph[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences
