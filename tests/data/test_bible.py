"""KJV <-> WEB verse alignment from Debian's SWORD modules (sword-text-kjv, sword-text-web).

The zText reader and the entry walk are tested on a module built here byte by byte; the real
modules' tests skip when the packages are not installed (``make setup`` installs them as root)."""

from __future__ import annotations

import shutil
import struct
import zlib

import pytest

from lmlab.data import bible
from lmlab.errors import DataError


def _write_module(folder, testament: str, entries: list[str], per_block: int = 3) -> None:
    """A zText testament: entries grouped into zlib blocks, .bzs (offset, csize, usize), .bzv (block, offset, size)."""
    folder.mkdir(parents=True, exist_ok=True)
    bzs, bzv, bzz = b"", b"", b""
    for first in range(0, len(entries), per_block):
        raw, offsets = b"", []
        for entry in entries[first:first + per_block]:
            data = entry.encode("utf-8")
            offsets.append((len(raw), len(data)))
            raw += data
        block = first // per_block
        compressed = zlib.compress(raw)
        bzs += struct.pack("<III", len(bzz), len(compressed), len(raw))
        bzz += compressed
        bzv += b"".join(struct.pack("<IIH", block, offset, size) for offset, size in offsets)
    (folder / f"{testament}.bzs").write_bytes(bzs)
    (folder / f"{testament}.bzv").write_bytes(bzv)
    (folder / f"{testament}.bzz").write_bytes(bzz)


ENTRIES = [
    "", "<milestone type=\"x-importer\"/>",
    '<div osisID="Gen" sID="g1" type="book"/><title type="main">Genesis</title>',
    '<chapter n="1" osisID="Gen.1" sID="Gen.1"/>',
    'In the <w lemma="strong:H7225">beginning</w> God<note placement="foot">a note</note> created.',
    '<transChange type="added">it was</transChange> good &amp; very good.',
    '<chapter n="2" osisID="Gen.2" sID="Gen.2"/>',
    "",                                                  # an empty verse
    "Thus the heavens were finished.",
    '<div osisID="Exod" sID="g2" type="book"/><chapter n="1" osisID="Extra.1"/> outside the versification',
    '<chapter n="1" osisID="Exod.1" sID="Exod.1"/>',
    'Now these are the names.<div eID="g2" osisID="Exod" type="book"/><div type="glossary"/> Glossary text',
]


def test_zText_reader_and_the_entry_walk(tmp_path):
    _write_module(tmp_path, "ot", ENTRIES)
    entries = bible.read_entries(tmp_path, "ot")
    assert entries == ENTRIES
    verses = bible.verses_of(entries, "test")
    assert verses == {("Gen", 1, 1): "In the beginning God created.", ("Gen", 1, 2): "it was good & very good.",
                      ("Gen", 2, 1): "", ("Gen", 2, 2): "Thus the heavens were finished.",
                      ("Exod", 1, 1): "Now these are the names."}


def test_a_corrupt_module_is_a_one_line_error(tmp_path):
    _write_module(tmp_path, "ot", ENTRIES)
    data = bytearray((tmp_path / "ot.bzz").read_bytes())
    data[5] ^= 0xFF
    (tmp_path / "ot.bzz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not decompress|bytes, index says"):
        bible.read_entries(tmp_path, "ot")
    (tmp_path / "ot.bzv").write_bytes(b"123")
    with pytest.raises(DataError, match="whole 12/10-byte records"):
        bible.read_entries(tmp_path, "ot")


def test_missing_packages_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("SWORD_PATH", str(tmp_path))
    assert not bible.available()
    with pytest.raises(DataError, match="apt-get install sword-text-kjv"):
        bible.module_folder("kjv")


needs_modules = pytest.mark.skipif(not bible.available(), reason="sword-text-kjv / sword-text-web not installed")


@needs_modules
def test_real_modules_align_by_verse():
    verses = bible.aligned_verses()
    assert len(verses) == 31095            # of the KJV's 31,102 verses, 7 are empty in the WEB
    first = verses[0]
    assert (first.book, first.chapter, first.verse) == ("Gen", 1, 1)
    assert first.kjv == "In the beginning God created the heaven and the earth."
    assert first.web == "In the beginning, God created the heavens and the earth."
    wept = next(v for v in verses if (v.book, v.chapter, v.verse) == ("John", 11, 35))
    assert wept.kjv == "Jesus wept." and wept.web == "Jesus wept."
    assert verses[-1].web == "The grace of the Lord Jesus Christ be with all the saints. Amen."  # no glossary
    assert all("<" not in v.kjv and "<" not in v.web and v.kjv and v.web for v in verses)
    assert len({v.book for v in verses}) == 66


@needs_modules
def test_split_by_book_is_disjoint_and_fixed():
    splits = bible.split_by_book(bible.aligned_verses())
    books = {name: {v.book for v in part} for name, part in splits.items()}
    assert not (books["train"] & books["valid"]) and not (books["train"] & books["test"])
    assert books["test"] == {"2Sam", "Prov", "Amos", "Matt", "Phil", "1Pet"}
    assert sum(len(p) for p in splits.values()) == 31095


@needs_modules
def test_a_changed_module_file_is_refused(tmp_path, monkeypatch):
    source = bible.sword_path() / "modules/texts/ztext"
    for folder, _ in bible.MODULES.values():
        shutil.copytree(source / folder, tmp_path / "modules/texts/ztext" / folder)
    path = tmp_path / "modules/texts/ztext/engKJV2006eb/nt.bzs"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    monkeypatch.setenv("SWORD_PATH", str(tmp_path))
    with pytest.raises(DataError, match="SHA-256 differs from the pinned sword-text-kjv 14.3-1"):
        bible.module_folder("kjv")
