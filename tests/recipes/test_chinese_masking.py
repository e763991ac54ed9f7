"""Chinese whole-word and ERNIE entity masking from a run file (``[data] segment``, ``[objective] scheme``).

Without segmentation a WordPiece "word" of Chinese text is everything between two punctuation
marks, and whole-word masking masks clauses (measured here on People's Daily: 6.6 "words" in a
46-token row). With ``segment = "jieba" | "gold" | "entities"`` the units are words (or whole
named entities), and every masked unit is one of them.
"""

from __future__ import annotations

import pytest
import torch

from lmlab.objectives import masking
from lmlab.recipes.bert_family import segmented_text
from lmlab.recipes.run import RunFile

pytest.importorskip("jieba", reason="needs the zh extra (jieba)")


def _job(segment: str):
    from lmlab.recipes.bert_family import build

    run = RunFile({"family": "bert",
                   "data": {"corpus": "peoples-daily", "max_documents": 300, "seq_len": 64, "batch_size": 16,
                            "input_format": "full-sentences", "segment": segment},
                   "tokenizer": {"vocab_size": 3000},
                   "model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64},
                   "objective": {"scheme": "whole-word"}}, name="zh")
    return build(run)


def _units(job, rows):
    masker = job.objective.masker
    special = masking.special_mask(rows, masker.special_ids)
    return masking.word_ids_from_pieces(rows, special, masker.starts_word, masker.ends_word), special


@pytest.mark.parametrize("segment", ["", "gold", "jieba", "entities"])
def test_whole_word_masking_masks_words_not_clauses(segment):
    job = _job(segment)
    rows = torch.as_tensor(job.train_source.batch(0))
    words, special = _units(job, rows)
    tokens_per_word = (~special).sum().item() / (words.max(1).values + 1).sum().item()
    if segment == "":
        assert tokens_per_word > 4          # clauses: the defect this table exists to fix
        return
    assert tokens_per_word < 2.5            # Chinese words are 1-2 characters on average
    masked = job.objective.masker(rows, torch.Generator().manual_seed(0)).corrupted.selected
    for b in range(rows.shape[0]):           # each word is masked all or nothing
        for w in words[b][masked[b]].unique().tolist():
            assert bool(masked[b][words[b] == w].all())
    rate = masked.sum().item() / (~special).sum().item()
    assert 0.10 < rate <= 0.16


def test_entities_are_one_unit():
    from lmlab.data import sources

    doc = next(d for d in sources.load("peoples-daily").documents if "nr" in d.meta["tags"])
    text = segmented_text(doc, "entities")
    words, tags = doc.meta["words"], doc.meta["tags"]
    i = next(i for i in range(len(tags) - 1) if tags[i] == tags[i + 1] == "nr")   # surname + given name
    assert words[i] + words[i + 1] in text.split()
    assert segmented_text(doc, "gold").split() == words


def test_bad_segment_values_are_one_line_errors():
    from lmlab.data.corpus import Document
    from lmlab.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'jieba'"):
        segmented_text(Document("x", "中国"), "jeiba")
    with pytest.raises(ConfigError, match="needs a corpus with gold words"):
        segmented_text(Document("x", "中国"), "gold")
