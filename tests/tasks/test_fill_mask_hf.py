"""Fill-mask vs Hugging Face ``pipeline("fill-mask")`` on the same weights (exported through interop):
the same top-k tokens and scores within 1e-5, one mask and several masks per input."""

from __future__ import annotations

import pytest
import torch

import lmlab

transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

TEXTS = ["the film is [MASK] .", "a [MASK] movie with a thin plot and a [MASK] cast",
         "[MASK] [MASK] , and the ending is [MASK] too"]


def _folders(tmp_path, family):
    from lmlab.data import sources
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.interop.hf_bert import save_hf
    from lmlab.recipes.bert_family import make_model, special_ids, tokenizer_files

    texts = [d.text for d in sources.load("rotten-tomatoes").split().train[:1500]]
    tok = train_tokenizer("wordpiece", texts, vocab_size=400)
    torch.manual_seed(0)
    sizes = {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_length": 64}
    if family == "albert":
        sizes["d_embedding"] = 16
    model = make_model(family, tok.vocab_size, special_ids(tok), sizes)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # sharper than the 0.02 initialisation, so the top tokens are well separated
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    model.save_pretrained(tmp_path / "lmlab", extra_files=tokenizer_files(tok))
    save_hf(model, tmp_path / "hf", tokenizer_files=tok.files())
    return tok


def _hf_pipe(tmp_path, family, tok):
    from tokenizers.processors import TemplateProcessing

    ids = tok.special_ids()
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "hf" / "tokenizer.json"),
                                                  cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                                  unk_token="[UNK]", mask_token="[MASK]")
    hf_tok._tokenizer.post_processor = TemplateProcessing(single="[CLS] $A [SEP]",
                                                          special_tokens=[("[CLS]", ids["cls"]),
                                                                          ("[SEP]", ids["sep"])])
    cls = {"bert": transformers.BertForMaskedLM, "albert": transformers.AlbertForMaskedLM}[family]
    return transformers.pipeline("fill-mask", model=cls.from_pretrained(tmp_path / "hf").eval(), tokenizer=hf_tok,
                                 device=-1)


@pytest.mark.parametrize("family", ["bert", "albert"])
def test_fill_mask_equals_hf_pipeline(tmp_path, family):
    tok = _folders(tmp_path, family)
    ours = lmlab.pipeline("fill-mask", tmp_path / "lmlab")
    theirs = _hf_pipe(tmp_path, family, tok)
    mine = ours(TEXTS, top_k=5, batch_size=2)                  # batched, sorted, padded
    for text, got in zip(TEXTS, mine):
        ref = theirs(text, top_k=5)
        n_masks = text.count("[MASK]")
        if n_masks == 1:
            got, ref = [got], [ref]
        assert len(got) == len(ref) == n_masks
        for ours_k, ref_k in zip(got, ref):
            assert [r["token"] for r in ours_k] == [r["token"] for r in ref_k], text
            assert [r["token_str"] for r in ours_k] == [r["token_str"] for r in ref_k]
            diff = max(abs(a["score"] - b["score"]) for a, b in zip(ours_k, ref_k))
            assert diff < 1e-5, (text, diff)
        assert all("[MASK]" not in r["sequence"] for r in got[0]) if n_masks == 1 else \
            all(r["sequence"].count("[MASK]") == n_masks - 1 for r in got[0])


def test_fill_mask_needs_a_mask(tmp_path):
    from lmlab.errors import UsageError

    _folders(tmp_path, "bert")
    with pytest.raises(UsageError, match="no \\[MASK\\]"):
        lmlab.pipeline("fill-mask", tmp_path / "lmlab")(["no mask here"])
