"""NSP / SOP pairs, RoBERTa packings, the MLM objective (static vs dynamic), Chinese whole-word masking."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.errors import DataError, UsageError
from lmlab.objectives import masking, sentence
from lmlab.objectives.mlm import Masker, MaskingConfig, MLMObjective

PAD, CLS, SEP, MASK = 0, 1, 2, 3


def synthetic_documents(n_docs: int, gen: torch.Generator):
    """Documents whose sentences carry their (document, sentence) identity in their tokens."""
    docs = []
    for d in range(n_docs):
        n_sent = int(torch.randint(2, 8, (1,), generator=gen))
        docs.append([[100 * (d + 1) + s] * int(torch.randint(1, 5, (1,), generator=gen)) for s in range(n_sent)])
    return docs


@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_pair_labels_are_50_50(task):
    gen = torch.Generator().manual_seed(0)
    docs = synthetic_documents(500, gen)
    rows = sentence.pair_rows(docs, 12, CLS, SEP, PAD, gen, task=task, duplicates=160)
    labels = rows[:, -1]
    n = labels.numel()
    assert n >= 1e5
    assert abs(float(labels.float().mean()) - 0.5) < 3 * math.sqrt(0.25 / n)
    ids = rows[:, :-1]
    assert (ids[:, 0] == CLS).all()
    assert ((ids == SEP).sum(1) == 2).all()
    segments = sentence.segment_ids_from_sep(ids, SEP)
    # B segments: NSP negatives come from another document, positives from the same one
    sep1 = (ids == SEP).float().argmax(1)
    a_token, b_token = ids[:, 1], ids[torch.arange(len(ids)), sep1 + 1]  # token = 100 * (doc + 1) + sentence
    a_doc, b_doc = a_token // 100, b_token // 100
    a_first_sentence, b_first_sentence = a_token % 100, b_token % 100
    if task == "nsp":
        assert (b_doc[labels == 1] != a_doc[labels == 1]).all()
        assert (b_doc[labels == 0] == a_doc[labels == 0]).all()
    else:  # SOP: same document; negatives are swapped (B's sentence comes before A's)
        assert (b_doc == a_doc).all()
        assert (b_first_sentence[labels == 0] > a_first_sentence[labels == 0]).all()
        assert (b_first_sentence[labels == 1] < a_first_sentence[labels == 1]).all()
    assert (segments[:, : 2] == 0).all()


def test_nsp_needs_two_documents():
    with pytest.raises(DataError):
        sentence.pair_rows([[[5, 6], [7, 8]]], 16, CLS, SEP, PAD, torch.Generator(), task="nsp")
    with pytest.raises(UsageError):
        sentence.pair_rows([[[5, 6], [7, 8]]], 16, CLS, SEP, PAD, torch.Generator(), task="xyz")


def test_full_and_doc_sentences():
    docs = [[[5, 5, 5], [6, 6]], [[7, 7, 7, 7]], [[8]]]
    full = sentence.packed_rows(docs, 10, CLS, SEP, PAD, cross_documents=True)
    doc = sentence.packed_rows(docs, 10, CLS, SEP, PAD, cross_documents=False)
    # FULL-SENTENCES crosses documents, with a separator between them; DOC-SENTENCES never does
    assert full.tolist() == [[CLS, 5, 5, 5, 6, 6, SEP, PAD, PAD, PAD],
                             [CLS, 7, 7, 7, 7, SEP, 8, SEP, PAD, PAD]]
    assert doc.tolist() == [[CLS, 5, 5, 5, 6, 6, SEP, PAD, PAD, PAD],
                            [CLS, 7, 7, 7, 7, SEP, PAD, PAD, PAD, PAD],
                            [CLS, 8, SEP, PAD, PAD, PAD, PAD, PAD, PAD, PAD]]


def test_rows_source_covers_epoch_and_shards():
    rows = torch.arange(40).view(20, 2)
    from lmlab.data.stream import Rows

    source = Rows(rows, batch_size=5, seed=0)
    seen = torch.cat([source.batch(s, i, 2) for s in range(2) for i in range(2)])[:, 0]
    assert sorted(seen.tolist()) == list(range(0, 40, 2))
    assert torch.equal(source.batch(3, 1, 2), source.batch(3, 1, 2))


def token_objective(static: int, scheme: str = "token") -> MLMObjective:
    starts = torch.ones(200, dtype=torch.bool)
    masker = Masker(MaskingConfig(scheme=scheme, static_duplicates=static), 200, MASK, [PAD, CLS, SEP, MASK],
                    starts_word=starts)
    return MLMObjective(masker, pad_id=PAD)


def test_dynamic_masking_differs_across_epochs_static_does_not():
    rows = torch.randint(4, 200, (8, 32), generator=torch.Generator().manual_seed(0))
    rows[:, 0], rows[:, -1] = CLS, SEP
    dynamic, static = token_objective(0), token_objective(1)
    # the Trainer hands prepare() a generator seeded by (seed, step, shard): a later epoch has other seeds
    epoch1, epoch2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(12)
    d1, d2 = dynamic.prepare(rows, epoch1), dynamic.prepare(rows, epoch2)
    assert not torch.equal(d1.selected, d2.selected)
    s1 = static.prepare(rows, torch.Generator().manual_seed(11))
    s2 = static.prepare(rows, torch.Generator().manual_seed(12))
    assert torch.equal(s1.selected, s2.selected) and torch.equal(s1.input_ids, s2.input_ids)
    # the same row in another batch position, or another batch, keeps its static mask
    s3 = static.prepare(rows.flip(0), torch.Generator().manual_seed(13))
    assert torch.equal(s3.selected.flip(0), s1.selected)
    # dupe factor 10: a row is seen with at most 10 different masks over many epochs
    static10 = token_objective(10)
    masks = {tuple(static10.prepare(rows[:1], torch.Generator().manual_seed(e)).selected[0].tolist())
             for e in range(200)}
    assert 2 <= len(masks) <= 10


def test_objective_never_masks_padding_and_labels_match():
    rows = torch.randint(4, 200, (16, 40), generator=torch.Generator().manual_seed(1))
    rows[:, 0] = CLS
    rows[:, 30:] = PAD
    rows[:, 29] = SEP
    for scheme in ("token", "whole-word", "ngram", "span"):
        batch = token_objective(0, scheme).prepare(rows, torch.Generator().manual_seed(2))
        assert not batch.selected[:, 29:].any() and not batch.selected[:, 0].any()
        assert torch.equal(batch.labels, rows[batch.selected])
        assert torch.equal(batch.attention_mask, (rows != PAD).long())


def test_chinese_whole_word_masking_on_peoples_daily():
    from lmlab.data import sources

    corpus = sources.load("peoples-daily")
    docs = [d for d in corpus.documents[:400] if 20 <= len(d.text) <= 120][:200]
    B, T = len(docs), 122
    unit_ids = torch.full((B, T), -1, dtype=torch.long)
    entity_rows = []
    for b, doc in enumerate(docs):
        units = masking.chinese_word_units(doc.meta["words"])
        unit_ids[b, 1:1 + len(units)] = torch.tensor(units)  # position 0 is [CLS]
        entity_rows.append(masking.entity_units(doc.meta["words"], doc.meta["tags"]))
    gen = torch.Generator().manual_seed(0)
    selected = masking.select_units(unit_ids, gen)
    # a gold word is masked all-or-nothing: no word has a masked and an unmasked character
    for b, doc in enumerate(docs[:50]):
        chars = selected[b, 1:1 + len(doc.text)].tolist()
        units = masking.chinese_word_units(doc.meta["words"])
        for w in set(units):
            flags = {chars[i] for i, u in enumerate(units) if u == w}
            assert len(flags) == 1
    rate = float(selected.sum()) / float((unit_ids >= 0).sum())
    assert 0.12 < rate <= 0.15 + 1e-9
    # ERNIE entity masking: units are whole person/place/organisation names, entities first
    n_units = max(len(flags) for _, flags in entity_rows)
    ent_units = torch.full((B, T), -1, dtype=torch.long)
    ent_flags = torch.zeros(B, n_units, dtype=torch.bool)
    for b, (units, flags) in enumerate(entity_rows):
        ent_units[b, 1:1 + len(units)] = torch.tensor(units)
        ent_flags[b, :len(flags)] = torch.tensor(flags)
    chosen = masking.select_entities(ent_units, ent_flags, gen)
    has_entity = ent_flags.any(1)
    picked_entity = torch.zeros(B, dtype=torch.bool)
    for b in range(B):
        u = ent_units[b][chosen[b]]
        if u.numel():
            picked_entity[b] = ent_flags[b, u].any()
    assert picked_entity[has_entity].float().mean() > 0.95
