"""Fill-mask vs Hugging Face ``pipeline("fill-mask")`` on the same weights (exported through interop):
the same top-k tokens and scores within 1e-5, one mask and several masks per input. ELECTRA fills
masks with its generator (exported as HF's ``ElectraForMaskedLM``); every family with the
``fill-mask`` capability fills masks from its saved folder; the others refuse in one line."""

from __future__ import annotations

import pytest
import torch

import lmlab
from lmlab import registry

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
    if family == "electra":  # a 1/4-width generator (8 wide, 1 head): E = 16 -> 8 is projected
        sizes.update(d_embedding=16, n_heads=4, generator_ratio=0.25)
    model = make_model(family, tok.vocab_size, special_ids(tok), sizes)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # sharper than the 0.02 initialisation, so the top tokens are well separated
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    model.save_pretrained(tmp_path / "lmlab", extra_files=tokenizer_files(tok))
    save_hf(model, tmp_path / "hf", tokenizer_files=tok.files(), part="generator" if family == "electra" else "model")
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
    cls = {"bert": transformers.BertForMaskedLM, "albert": transformers.AlbertForMaskedLM,
           "electra": transformers.ElectraForMaskedLM}[family]
    return transformers.pipeline("fill-mask", model=cls.from_pretrained(tmp_path / "hf").eval(), tokenizer=hf_tok,
                                 device=-1)


@pytest.mark.parametrize("family", ["bert", "albert", "electra"])
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


def _tiny_tokenizer():
    from lmlab.data.tokenizers import train_tokenizer

    return train_tokenizer("wordpiece", [t.replace("[MASK]", "") for t in TEXTS] * 3 +
                           ["the cast is fun and the plot is thin", "a dull movie , and a fine film"], vocab_size=120)


def _check_fill(pipe, model, tok, text="a [MASK] movie with a [MASK] cast", top_k=4):
    """The pipeline's top-k at each mask equals a direct softmax of the model's masked-LM logits there."""
    from lmlab.tasks.predict import masked_lm_logits

    got = pipe(text, top_k=top_k)
    mask_id = tok.special_ids()["mask"]
    ids = torch.tensor([[tok.special_ids()["cls"], *tok.encode(text), tok.special_ids()["sep"]]])
    with torch.inference_mode():
        probs = torch.softmax(masked_lm_logits(model.eval(), ids, torch.ones_like(ids), ids == mask_id).float(), -1)
    assert len(got) == probs.shape[0] == 2
    for k, ranked in enumerate(got):
        scores = [r["score"] for r in ranked]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
        best, tokens = probs[k].topk(top_k)
        assert [r["token"] for r in ranked] == tokens.tolist()
        torch.testing.assert_close(torch.tensor(scores), best, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", sorted(n for n, row in registry.FAMILIES.items()
                                          if "fill-mask" in row.capabilities))
def test_every_fill_mask_family_fills_masks_from_its_folder(tmp_path, family):
    from lmlab.recipes.bert_family import make_model, special_ids, tokenizer_files

    tok = _tiny_tokenizer()
    torch.manual_seed(0)
    model = make_model(family, tok.vocab_size, special_ids(tok))
    model.save_pretrained(tmp_path / family, extra_files=tokenizer_files(tok))
    from lmlab.tasks.predict import default_task

    assert default_task(tmp_path / family) == "fill-mask"
    pipe = lmlab.pipeline("fill-mask", tmp_path / family)
    _check_fill(pipe, pipe.model, tok)


def test_electra_fills_masks_with_its_generator_not_the_discriminator(tmp_path):
    from lmlab.recipes.bert_family import make_model, special_ids

    tok = _tiny_tokenizer()
    torch.manual_seed(0)
    model = make_model("electra", tok.vocab_size, special_ids(tok)).eval()
    pipe = lmlab.pipeline("fill-mask", model, tok)
    _check_fill(pipe, model, tok)
    ids = torch.tensor([[5, 6, tok.special_ids()["mask"], 7]])
    with torch.no_grad():
        torch.nn.init.normal_(model.discriminator.head_dense.weight)   # the RTD head plays no part
        before = model.masked_lm_logits(ids).clone()
        model.discriminator.encoder.layers[0].apply(lambda m: torch.nn.init.normal_(m.weight)
                                                    if isinstance(m, torch.nn.Linear) else None)
        assert torch.equal(model.masked_lm_logits(ids), before)        # nor the discriminator's encoder
        torch.nn.init.normal_(model.generator.transform.weight)
        assert not torch.equal(model.masked_lm_logits(ids), before)


def _one_line_refusal(folder, match):
    from lmlab.errors import UsageError

    with pytest.raises(UsageError, match=match) as info:
        lmlab.pipeline("fill-mask", folder)("a [MASK] movie")
    assert "\n" not in str(info.value), str(info.value)


def test_electra_without_a_generator_refuses_in_one_line(tmp_path):
    """A fine-tuned ELECTRA classifier and an HF ELECTRA discriminator folder have no masked LM."""
    from lmlab.interop.hf_bert import save_hf
    from lmlab.recipes.bert_family import make_model, special_ids, tokenizer_files
    from lmlab.tasks import classification as clf

    tok = _tiny_tokenizer()
    model = make_model("electra", tok.vocab_size, special_ids(tok), {"d_embedding": 16, "d_model": 32, "d_ff": 64})
    model.save_pretrained(tmp_path / "electra", extra_files=tokenizer_files(tok))
    head = clf.SequenceClassifier.on(lmlab.load(tmp_path / "electra"), ["neg", "pos"], max_len=16)
    clf.save_classifier(head, tok, tmp_path / "classifier", str(tmp_path / "electra"), {"data": {}})
    _one_line_refusal(tmp_path / "classifier", "a 'classifier' model cannot do 'fill-mask' .*families that can: .*electra")
    save_hf(model, tmp_path / "hf", tokenizer_files=tok.files())     # the discriminator alone
    _one_line_refusal(tmp_path / "hf", "ElectraDiscriminator has none .*generator")


@pytest.mark.parametrize("family", ["xlnet", "gpt", "t5"])
def test_other_families_refuse_fill_mask_in_one_line(tmp_path, family):
    row = registry.get(family)
    torch.manual_seed(0)
    row.model_class()(row.config_from({}, {})).save_pretrained(tmp_path / family)
    _one_line_refusal(tmp_path / family, f"a {family!r} model cannot do 'fill-mask' \\(predicts masked tokens\\)")
