"""Segment ids of sentence pairs through the encoder protocol: by hand, in the heads, and vs Hugging Face."""

from __future__ import annotations

import pytest
import torch

from lmlab.tasks import classification as clf
from lmlab.tasks.pairs import PairClassifier
from lmlab.tasks.qa import QuestionAnswerer

torch.set_num_threads(1)

CLS, SEP, PAD = 2, 3, 0


def framed(pairs_of_lengths, width, seed=0):
    """Rows ``[CLS] a [SEP] (b [SEP])`` of random ids >= 5 for (len a, len b or 0), padded to ``width``."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((len(pairs_of_lengths), width), PAD)
    for i, (a, b) in enumerate(pairs_of_lengths):
        row = [CLS, *torch.randint(5, 90, (a,), generator=gen).tolist(), SEP]
        if b:
            row += [*torch.randint(5, 90, (b,), generator=gen).tolist(), SEP]
        ids[i, : len(row)] = torch.tensor(row)
    return ids, (ids != PAD).long()


def test_segment_ids_by_hand():
    ids = torch.tensor([[CLS, 7, 8, SEP, 9, SEP, PAD], [CLS, 7, SEP, PAD, PAD, PAD, PAD]])
    mask = (ids != PAD).long()
    assert clf.segment_ids(ids, mask, SEP).tolist() == [[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0]]
    assert clf.segment_ids(ids[:1, :6], None, SEP).tolist() == [[0, 0, 0, 0, 1, 1]]


def _tiny(family):
    from lmlab.models.albert import AlbertConfig, AlbertForPreTraining
    from lmlab.models.bert import BertConfig, BertForPreTraining
    from lmlab.models.electra import ElectraConfig, ElectraForPreTraining
    from lmlab.models.xlnet import XLNetConfig, XLNetLMHeadModel

    torch.manual_seed(0)
    sizes = {"vocab_size": 97, "d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64}
    if family == "bert":
        return BertForPreTraining(BertConfig(max_length=32, **sizes))
    if family == "roberta":
        return BertForPreTraining(BertConfig(max_length=32, type_vocab_size=1, **sizes))
    if family == "albert":
        return AlbertForPreTraining(AlbertConfig(d_embedding=16, max_length=32, **sizes))
    if family == "electra":
        return ElectraForPreTraining(ElectraConfig(d_embedding=16, max_length=32, **sizes))
    return XLNetLMHeadModel(XLNetConfig(**sizes))


@pytest.mark.parametrize("family", ["bert", "albert", "electra", "xlnet", "roberta"])
def test_pair_logits_read_segment_ids(family):
    """A pair's logits (classifier, pair classifier, QA spans) change when the head reads segment ids
    (segment_sep set) for the families with
    segments, and do not for RoBERTa (one segment type); a single text's never change for BERT-style ones."""
    model = _tiny(family).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights everywhere, larger on XLNet's small relative-segment terms
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (1.0 if "seg" in name else 0.05))
    ids, mask = framed([(4, 3), (2, 5)], 12)
    makers = {"classifier": lambda sep: clf.SequenceClassifier.on(model, ["a", "b"], segment_sep=sep),
              "pair-classifier": lambda sep: PairClassifier.on(model, segment_sep=sep),
              "qa": lambda sep: QuestionAnswerer.on(model, segment_sep=sep, max_len=32,
                                                     max_question_len=8, doc_stride=8)}
    for head, make in makers.items():
        torch.manual_seed(1)
        with_segments = make(SEP).eval()
        torch.manual_seed(1)
        without = make(-1).eval()
        with torch.no_grad():  # the heads start near 0 (std 0.02): scale both alike so differences show
            for h in (with_segments, without):
                (h.span if head == "qa" else h.out).weight.mul_(50)
        with torch.no_grad():
            a, b = with_segments(ids, mask), without(ids, mask)
        if head == "qa":  # (start, end) logits (B, T) each
            a, b = torch.stack(a), torch.stack(b)
        if family == "roberta":
            assert not clf.takes_segments(clf.encoder_of(model))
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        else:
            assert clf.takes_segments(clf.encoder_of(model))
            assert (a - b).abs().max() > 1e-4, (family, head)
            # and exactly what encode() gives with the segment ids passed by hand
            encoder = clf.encoder_of(model)
            with torch.no_grad():
                hidden, _ = encoder.encode(ids, mask, clf.segment_ids(ids, mask, SEP))
                ref, _ = clf.encode(encoder, ids, mask, SEP)
            torch.testing.assert_close(hidden, ref, rtol=0, atol=0)
    if family in ("bert", "albert", "electra"):  # segment 0 everywhere is the one-segment input
        single, single_mask = framed([(6, 0), (3, 0)], 10)
        encoder = clf.encoder_of(model)
        with torch.no_grad():
            torch.testing.assert_close(clf.encode(encoder, single, single_mask, SEP)[0],
                                       encoder.encode(single, single_mask)[0], rtol=0, atol=0)


def _hf_pair_inputs(width=12):
    ids, mask = framed([(4, 3), (2, 5), (6, 0)], width, seed=3)
    token_type_ids = torch.zeros_like(ids)  # what an HF BERT tokenizer returns for (a, b): 0 .. [SEP], then 1
    for i, row in enumerate(ids.tolist()):
        first_sep = row.index(SEP)
        for t in range(first_sep + 1, len(row)):
            token_type_ids[i, t] = int(row[t] != PAD)
    return ids, mask, token_type_ids


def _through_hf_folder(hf, tmp_path, load_hf):
    """Random weights everywhere on the HF model (HF zero-initialises biases), saved, read by lmlab."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    hf.eval().save_pretrained(tmp_path / "hf", safe_serialization=True)
    return load_hf(tmp_path / "hf").eval()


@pytest.mark.parametrize("family", ["bert", "albert", "electra"])
def test_pair_encoding_matches_hf_with_token_type_ids(tmp_path, family):
    transformers = pytest.importorskip("transformers")
    from lmlab.interop.hf_bert import load_hf

    common = {"vocab_size": 97, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 64, "max_position_embeddings": 40}
    hf = {"bert": lambda: transformers.BertForPreTraining(transformers.BertConfig(**common)),
          "albert": lambda: transformers.AlbertForPreTraining(transformers.AlbertConfig(embedding_size=16, **common)),
          "electra": lambda: transformers.ElectraForPreTraining(transformers.ElectraConfig(embedding_size=16,
                                                                                            **common))}[family]()
    ours = _through_hf_folder(hf, tmp_path, load_hf)
    ids, mask, token_type_ids = _hf_pair_inputs()
    assert torch.equal(clf.segment_ids(ids, mask, SEP), token_type_ids)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=token_type_ids,
                 output_hidden_states=True).hidden_states[-1]
        hidden, _ = clf.encode(clf.encoder_of(ours), ids, mask, SEP)
        unsegmented = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    real = mask.bool()
    assert (hidden[real] - ref[real]).abs().max() < 1e-5
    assert (hidden[real] - unsegmented[real]).abs().max() > 1e-3  # the segments mattered


def test_xlnet_pair_encoding_matches_hf_with_token_type_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    from lmlab.interop.hf_xlnet import load_hf

    hf = transformers.XLNetLMHeadModel(transformers.XLNetConfig(vocab_size=97, d_model=32, n_layer=2, n_head=4,
                                                                d_inner=64, pad_token_id=PAD))
    ours = _through_hf_folder(hf, tmp_path, load_hf)
    ids, mask, token_type_ids = _hf_pair_inputs()
    with torch.no_grad():
        ref = hf.transformer(input_ids=ids, attention_mask=mask, token_type_ids=token_type_ids).last_hidden_state
        hidden, _ = clf.encode(clf.encoder_of(ours), ids, mask, SEP)
    real = mask.bool()
    assert (hidden[real] - ref[real]).abs().max() < 1e-5
