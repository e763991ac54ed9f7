"""The King James Version and the World English Bible, aligned verse by verse, read from Debian's SWORD modules.

A real parallel corpus of human paraphrase: the KJV (1611/1769, Early Modern English) and the WEB
(2000-2020, a modern-English revision of the ASV of 1901), both public domain. The verses come from
the Debian packages that ship them as SWORD modules, read here in pure Python:

| text | Debian package | SWORD module | versification |
|---|---|---|---|
| KJV | ``sword-text-kjv`` 14.3-1 | engKJV2006eb (zText, OSIS) | KJV |
| WEB | ``sword-text-web`` 426.0-1 | engWEB2015eb (zText, OSIS) | NRSVA (with the Deuterocanon) |

Install them with ``apt-get install sword-text-kjv sword-text-web`` (``make setup`` does, as root);
``$SWORD_PATH`` (default ``/usr/share/sword``) points elsewhere. Every module file is checked against
the SHA-256 pinned in :data:`MODULES` before it is read, so a different package version is refused by
name rather than silently giving other text.

**The zText format.** Per testament (``ot``, ``nt``) three files: ``.bzz`` is a run of zlib-compressed
blocks (here one block per book); ``.bzs`` has one 12-byte record per block, little-endian
(offset in .bzz, compressed size, uncompressed size); ``.bzv`` has one 10-byte record per *entry*
(block number, offset in the uncompressed block, size). Entries follow the versification: entry 0 is
the module heading, 1 the testament heading, then for each book a book-heading entry and, for each
chapter, a chapter-heading entry followed by one entry per verse. osis2mod writes the OSIS
``<chapter osisID="Gen.1" .../>`` tag into each chapter-heading entry and the book's
``<div type="book" sID=...>`` into its book-heading entry, so the book, chapter and verse of every
entry are read from the data itself (no versification table is needed). Text outside the
versification lands in those headings (the WEB puts its Greek Daniel chapters into Hosea's book
heading) and is not read; back matter after the last verse of a book (the WEB's glossary after
Revelation 22:21) is cut off at the book's closing ``div``. The totals are checked
against the KJV versification (23,145 + 7,957 verses in 39 + 27 books).

**Cleaning.** Footnotes (``<note>``), headings and Psalm superscriptions (``<title>``), speaker labels
and all other markup are dropped; the words inside ``<w>``, ``<transChange>`` (the KJV's italics),
``<q>`` (red letters), ``<l>`` (poetry lines) are kept; XML entities are decoded and white space collapsed.

**Alignment** is by (book, chapter, verse) key, the books both have (the WEB's Deuterocanon is not
in the KJV). The NRSVA and KJV versifications number a few verses differently (3 John 14-15,
Revelation 12:17-18, ...), so at those few places the aligned verses are not translations of each other;
verses that are empty in either text are left out.

**Split by book** (:func:`split_by_book`): canonical book number i (0 = Genesis) goes to ``valid``
when i % 10 == 4, to ``test`` when i % 10 == 9, else to ``train`` — so no chapter of a test book
was seen in training.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import DataError

PACKAGES = {"kjv": ("sword-text-kjv", "14.3-1"), "web": ("sword-text-web", "426.0-1")}
MODULES = {  # module folder under modules/texts/ztext -> {file: sha256}
    "kjv": ("engKJV2006eb", {
        "ot.bzs": "0d518856e8c6ceae0ca58bef944ba9a2809b5d4489cf81900853ad4af227510b",
        "ot.bzv": "b4fae54cb0b979b7f3f78fe6eaa94bad1f1d408eccb4a40410402b794b5c2f0f",
        "ot.bzz": "69f7e4e9b42ecef2e212ea957a388fccbeed1e3e333a38cf52e1b4064c6ce373",
        "nt.bzs": "e7f9bc653743217cdcdf95890a708f997a03af056161d84bb540efef79e4e638",
        "nt.bzv": "9d1daab8fb6ef43b53642cdd3276c1fa95ecfde08901bbb349be6378d1e1b972",
        "nt.bzz": "135b6e70af49372f3a82c5d9cc3c00278f38dbb2c12af74ea8d4b54c18d0cd56",
    }),
    "web": ("engWEB2015eb", {
        "ot.bzs": "2c16645bb829c05b20f39769e1fa23212743335143833a819f29e412c6def8ce",
        "ot.bzv": "dbd3b762b7159c5dd4b535f75b6ab643fb62ae44f4655aff3c5098a955a1ae57",
        "ot.bzz": "4633066d3872f1a3e600d2d10e667a13cd6c32bf116ca971d3c8f288bc3ea453",
        "nt.bzs": "bec87a360bbc6bfbcd7de513edf928ceebb428dd2baff813aebf521bb0c6cc83",
        "nt.bzv": "bb7a522d8323ccd7be462fca4dcd53c06d966c140fe260a6295e05393d259338",
        "nt.bzz": "5429389d9331b7a86901a73afa74f32d089cae3d5bd8dfe304b11808714a69ba",
    }),
}
KJV_TOTALS = {"ot": (39, 23145), "nt": (27, 7957)}   # books, verses of the KJV versification

_CHAPTER = re.compile(r'<chapter\b[^>]*\bosisID="([^".]+)\.(\d+)"')
_BOOK_START = re.compile(r'<div\b(?=[^>]*\bsID=)(?=[^>]*\btype="book")[^>]*>')
_END_OF_TEXT = re.compile(r'<div\b[^>]*\btype="(?:book|glossary|back|appendix)"')  # a book closes, back matter begins
_DROP = re.compile(r"<(note|title|speaker)\b[^>]*?(?<!/)>.*?</\1>", re.S)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Verse:
    book: str        # OSIS book id: Gen, Exod, ..., Matt, ..., Rev
    chapter: int
    verse: int
    kjv: str
    web: str


def sword_path() -> Path:
    return Path(os.environ.get("SWORD_PATH", "/usr/share/sword"))


def available() -> bool:
    """True when both modules are installed (tests skip otherwise)."""
    return all((sword_path() / "modules/texts/ztext" / folder / "nt.bzz").is_file() for folder, _ in MODULES.values())


def module_folder(name: str) -> Path:
    """The checked folder of module ``name`` ("kjv" or "web"): every file present and with its pinned SHA-256."""
    folder_name, files = MODULES[name]
    folder = sword_path() / "modules/texts/ztext" / folder_name
    package, version = PACKAGES[name]
    for file, digest in files.items():
        path = folder / file
        if not path.is_file():
            raise DataError(f"{path} not found: install the Debian package {package} ({version}) "
                            f"(apt-get install {package}) or set SWORD_PATH")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise DataError(f"{path}: SHA-256 differs from the pinned {package} {version}; lmlab reads that version only")
    return folder


def clean_osis(markup: str) -> str:
    """The words of one OSIS entry: notes, titles and speaker labels dropped, other tags removed, entities decoded."""
    text = _DROP.sub(" ", markup)
    text = _TAG.sub("", text)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def read_entries(folder: Path, testament: str) -> list[str]:
    """The raw OSIS text of every entry of one testament of a zText module, in index order."""
    try:
        bzs = (folder / f"{testament}.bzs").read_bytes()
        bzv = (folder / f"{testament}.bzv").read_bytes()
        bzz = (folder / f"{testament}.bzz").read_bytes()
    except OSError as err:
        raise DataError(f"{folder}: cannot read the {testament} files ({err})") from None
    if len(bzs) % 12 or len(bzv) % 10:
        raise DataError(f"{folder}/{testament}: index files are not whole 12/10-byte records")
    blocks = list(struct.iter_unpack("<III", bzs))           # (offset, compressed size, uncompressed size)
    cache: dict[int, bytes] = {}
    out = []
    for number, (block, offset, size) in enumerate(struct.iter_unpack("<IIH", bzv)):
        if size == 0:
            out.append("")
            continue
        if block >= len(blocks):
            raise DataError(f"{folder}/{testament}.bzv: entry {number} names block {block} of {len(blocks)}")
        if block not in cache:
            start, compressed, expected = blocks[block]
            try:
                data = zlib.decompress(bzz[start:start + compressed])
            except zlib.error as err:
                raise DataError(f"{folder}/{testament}.bzz: block {block} does not decompress ({err})") from None
            if len(data) != expected:
                raise DataError(f"{folder}/{testament}.bzz: block {block} is {len(data)} bytes, index says {expected}")
            cache[block] = data
        try:
            out.append(cache[block][offset:offset + size].decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DataError(f"{folder}/{testament}: entry {number} is not UTF-8 ({err})") from None
    return out


def verses_of(entries: list[str], where: str) -> dict[tuple[str, int, int], str]:
    """(book, chapter, verse) -> cleaned text, from one testament's entries (see the module docstring)."""
    out: dict[tuple[str, int, int], str] = {}
    book, chapter, verse = None, 0, 0
    last_key = None
    for entry in entries[2:]:                                # 0: module heading, 1: testament heading
        if _BOOK_START.search(entry):                        # a book heading (it may hold text outside the versification)
            book, last_key = None, None
            continue
        match = _CHAPTER.search(entry)
        if match:
            if int(match.group(2)) == 1 and last_key is not None:
                out.pop(last_key, None)                      # that entry was the next book's heading, without a book div
            book, chapter, verse = match.group(1), int(match.group(2)), 0
            last_key = None
            continue
        if book is None:
            continue
        verse += 1
        last_key = (book, chapter, verse)
        end = _END_OF_TEXT.search(entry)
        out[last_key] = clean_osis(entry[: end.start()] if end else entry)
    if not out:
        raise DataError(f"{where}: no verses found")
    return out


@lru_cache(maxsize=2)
def read_bible(name: str) -> dict[tuple[str, int, int], str]:
    """Every verse of module ``name`` ("kjv" or "web"), keyed by (book, chapter, verse)."""
    folder = module_folder(name)
    verses: dict[tuple[str, int, int], str] = {}
    for testament in ("ot", "nt"):
        part = verses_of(read_entries(folder, testament), f"{folder}/{testament}")
        if name == "kjv":
            books, count = len({k[0] for k in part}), len(part)
            if (books, count) != KJV_TOTALS[testament]:
                raise DataError(f"{folder}/{testament}: {books} books and {count} verses, the KJV versification has "
                                f"{KJV_TOTALS[testament][0]} and {KJV_TOTALS[testament][1]}")
        verses.update(part)
    return verses


def aligned_verses() -> list[Verse]:
    """Every verse both texts have, non-empty in both, in canonical (KJV) order."""
    kjv, web = read_bible("kjv"), read_bible("web")
    return [Verse(book, chapter, verse, text, web[(book, chapter, verse)])
            for (book, chapter, verse), text in kjv.items()
            if text and web.get((book, chapter, verse))]


def book_order(verses: list[Verse]) -> list[str]:
    seen: dict[str, None] = {}
    for v in verses:
        seen.setdefault(v.book, None)
    return list(seen)


def split_by_book(verses: list[Verse]) -> dict[str, list[Verse]]:
    """{"train", "valid", "test"}: book i (canonical order) to valid when i % 10 == 4, test when i % 10 == 9."""
    index = {book: i for i, book in enumerate(book_order(verses))}
    splits: dict[str, list[Verse]] = {"train": [], "valid": [], "test": []}
    for v in verses:
        i = index[v.book] % 10
        splits["valid" if i == 4 else "test" if i == 9 else "train"].append(v)
    return splits
