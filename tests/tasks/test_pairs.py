"""Sentence pairs: verse pairs split by book, negatives, ranking candidates, the pair input, pooling, the
folder, and fine-tuning end to end (on an in-test fixture of real KJV / WEB verses)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import lmlab
from lmlab.tasks import pairs as pr

torch.set_num_threads(1)


@dataclass
class Verse:  # the shape of lmlab.data.bible.Verse
    book: str
    chapter: int
    verse: int
    kjv: str
    web: str


VERSES = [
    Verse("Genesis", 1, 1, "In the beginning God created the heaven and the earth.",
          "In the beginning, God created the heavens and the earth."),
    Verse("Genesis", 1, 2, "And the earth was without form, and void; and darkness was upon the face of the deep. "
          "And the Spirit of God moved upon the face of the waters.",
          "The earth was formless and empty. Darkness was on the surface of the deep and God's Spirit was "
          "hovering over the surface of the waters."),
    Verse("Genesis", 1, 3, "And God said, Let there be light: and there was light.",
          "God said, \u201cLet there be light,\u201d and there was light."),
    Verse("Genesis", 1, 4, "And God saw the light, that it was good: and God divided the light from the darkness.",
          "God saw the light, and saw that it was good. God divided the light from the darkness."),
    Verse("Genesis", 1, 5, "And God called the light Day, and the darkness he called Night. And the evening and the "
          "morning were the first day.",
          "God called the light \u201cday\u201d, and the darkness he called \u201cnight\u201d. There was evening and "
          "there was morning, the first day."),
    Verse("John", 3, 16, "For God so loved the world, that he gave his only begotten Son, that whosoever believeth "
          "in him should not perish, but have everlasting life.",
          "For God so loved the world, that he gave his one and only Son, that whoever believes in him should not "
          "perish, but have eternal life."),
    Verse("John", 11, 35, "Jesus wept.", "Jesus wept."),
    Verse("Psalms", 23, 1, "The LORD is my shepherd; I shall not want.", "Yahweh is my shepherd: I shall lack nothing."),
    Verse("Psalms", 23, 2, "He maketh me to lie down in green pastures: he leadeth me beside the still waters.",
          "He makes me lie down in green pastures. He leads me beside still waters."),
]
BOOKS = ["Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth", "1 Samuel",
         "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra", "Nehemiah", "Esther", "Job",
         "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon", "Isaiah", "Jeremiah", "Lamentations", "Ezekiel",
         "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai",
         "Zechariah", "Malachi", "Matthew", "Mark", "Luke", "John", "Acts", "Romans"]


def _many():
    """The fixture's verses copied into other books' names, so every split has some (texts are real,
    the book labels of the copies are not; used only where splitting is what is tested)."""
    return [Verse(book, v.chapter, v.verse, v.kjv, v.web) for book in BOOKS for v in VERSES]


def test_pairs_are_split_by_book_with_labelled_negatives():
    data = pr.verse_pairs(_many(), negatives=2, seed=0)
    assert set(data.books["train"]) | set(data.books["valid"]) | set(data.books["test"]) == set(BOOKS)
    assert all(data.books[a] and data.books[b] and not set(data.books[a]) & set(data.books[b])
               for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")])
    for split in ("train", "valid", "test"):
        for p in getattr(data, split):
            assert p.group.rsplit(" ", 1)[0] in data.books[split]
    by_kjv = {v.kjv: v.web for v in VERSES}
    positives = [p for p in data.train if p.label == 1]
    negatives = [p for p in data.train if p.label == 0]
    assert len(positives) == len(VERSES) * len(data.books["train"])
    assert all(by_kjv[p.a] == p.b for p in positives) and all(by_kjv[p.a] != p.b for p in negatives)
    assert len(negatives) > len(positives)  # two per verse, less the ones that drew the same text
    assert pr.verse_pairs(_many(), 2, 0).train == data.train  # seeded


def test_ranking_candidates():
    data = pr.verse_pairs(_many(), negatives=1)
    for a, candidates, truth in pr.ranking_candidates(data.train, k=3):
        assert candidates[truth] == dict((v.kjv, v.web) for v in VERSES)[a]
        assert len(candidates) <= 4 and len(set(candidates)) == len(candidates)


class Pieces:
    kind = "stand-in"

    def encode_batch(self, texts):
        return [[10 + len(w) for w in t.split()] for t in texts]

    def special_ids(self):
        return {"pad": 0, "cls": 2, "sep": 3}


def test_pair_input_layout():
    ids = pr.pair_ids(Pieces(), [("a bb", "ccc"), ("a a a a", "bb bb")], max_len=7)
    assert ids[0] == [2, 11, 12, 3, 13, 3]
    assert ids[1] == [2, 11, 11, 3, 12, 12, 3]  # the longer side is cut first
    rows = pr.pair_rows(ids, [1, 0], 8, 0)
    batch = pr.PairObjective().prepare(rows)
    assert batch["input_ids"][0].tolist() == [2, 11, 12, 3, 13, 3, 0, 0]
    assert batch["attention_mask"][0].tolist() == [1] * 6 + [0, 0] and batch["labels"].tolist() == [1, 0]


def _tokenizer_and_bert(family="bert"):
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.recipes.bert_family import make_model, special_ids

    # 400: room for every piece the verses support (346); the deterministic WordPiece keeps every
    # character in both forms, so 300 leaves fewer merges than the library trainer did
    tok = train_tokenizer("wordpiece", [t for v in VERSES for t in (v.kjv, v.web)] * 2, vocab_size=400)
    torch.manual_seed(0)
    bert = make_model(family, tok.vocab_size, special_ids(tok), {"d_model": 32, "n_layers": 1, "n_heads": 2,
                                                                  "d_ff": 64, "max_length": 128})
    return tok, bert


@pytest.mark.parametrize("pooling", ["cls", "last", "mean"])
def test_pooling_ignores_padding_and_folder_round_trips(tmp_path, pooling):
    tok, bert = _tokenizer_and_bert()
    model = pr.PairClassifier.on(bert, pooling, max_len=64).eval()
    ids = torch.tensor(pr.pair_ids(tok, [(VERSES[2].kjv, VERSES[2].web)], 64))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones_like(ids), torch.zeros(1, 5, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded, mask), model(ids, torch.ones_like(ids)), rtol=0, atol=1e-5)
    model.save_pretrained(tmp_path / "m", extra_files=tok.files())
    again = lmlab.load(tmp_path / "m").eval()
    assert type(again) is pr.PairClassifier and again.config == model.config
    assert torch.equal(model(ids), again(ids))
    pipe = pr.TextPairClassificationPipeline(again, tok)
    out = pipe({"text": VERSES[0].kjv, "text_pair": VERSES[0].web})
    assert out["label"] in ("different", "paraphrase") and 0.5 <= out["score"] <= 1


def test_finetune_pairs_end_to_end(tmp_path):
    from lmlab.recipes.bert_family import tokenizer_files

    tok, bert = _tokenizer_and_bert()
    bert.save_pretrained(tmp_path / "bert", extra_files=tokenizer_files(tok))
    spec = pr.PairSpec(steps=60, batch_size=16, max_len=64, lr=3e-3, negatives=1, rank_k=2, threads=1)
    scores = pr.finetune_pairs(tmp_path / "bert", _many(), spec, tmp_path / "ft")
    assert scores["pooling"] == "cls" and scores["n_test"] > 0
    # the fixture repeats nine verses across books, so training can memorise them: a check that the
    # loop learns, not a measurement
    assert scores["train_loss"] < 0.5, scores
    assert scores["accuracy"] > scores["majority_baseline"] and 0 < scores["mrr"] <= 1
    again = lmlab.load(tmp_path / "ft" / "model")
    data = pr.verse_pairs(_many(), 1, 0)
    from lmlab.data.tokenizers import load_tokenizer

    rescored = pr.evaluate_pairs(again, load_tokenizer(tmp_path / "ft" / "model"), data.test, rank_k=2)
    assert rescored["accuracy"] == scores["accuracy"] and rescored["mrr"] == scores["mrr"]
    with pytest.raises(lmlab.errors.UsageError):
        pr.finetune_pairs(tmp_path / "bert", "bible", spec, tmp_path / "x")


def test_gpt_style_pairs_read_the_last_token(tmp_path):
    """A causal encoder: <s> A </s> B </s> framed by the byte-level tokenizer's bos/eos, the last real
    token's state classified (GPT-1 §3.3); padding after it changes nothing, and the folder reloads."""
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.models.gpt import GPTConfig, GPTLanguageModel

    tok = train_tokenizer("bytebpe", [t for v in VERSES for t in (v.kjv, v.web)] * 2, vocab_size=300)
    torch.manual_seed(0)
    gpt = GPTLanguageModel(GPTConfig(vocab_size=tok.vocab_size, max_length=96, d_model=32, n_layers=1, n_heads=2))
    model = pr.PairClassifier.on(gpt, max_len=96).eval()
    assert model.config.pooling == "last" and model.config.encoder_family == "gpt"
    ids = pr.pair_ids(tok, [(VERSES[3].kjv, VERSES[3].web)], 96)[0]
    special = tok.special_ids()
    assert ids[0] == special["cls"] and ids[-1] == special["sep"] and ids.count(special["sep"]) == 2
    ids = torch.tensor([ids])
    padded = torch.cat([ids, torch.full((1, 4), special["pad"])], 1)
    mask = torch.cat([torch.ones_like(ids), torch.zeros(1, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded, mask), model(ids), rtol=0, atol=1e-5)
    model.save_pretrained(tmp_path / "m", extra_files=tok.files())
    assert torch.equal(lmlab.load(tmp_path / "m").eval()(ids), model(ids))
