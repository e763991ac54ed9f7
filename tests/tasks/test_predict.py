"""Prediction pipelines: outputs equal a direct forward pass, probabilities sum to 1, order and
the single-input convention as Hugging Face's, every registered task resolves."""

from __future__ import annotations

import pytest
import torch

import lmlab
from lmlab.errors import UsageError
from lmlab.tasks import classification as clf
from lmlab.tasks import predict

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["a moving, beautifully acted film that stays with you", "dull", "the plot is thin but the cast is fun",
         "an utterly lifeless and tedious mess of a movie with nothing at all to say about anything", "fine"]


@pytest.fixture(scope="module")
def corpus():
    from lmlab.data import sources

    return [d.text for d in sources.load("rotten-tomatoes").split().train[:800]]


@pytest.fixture(scope="module")
def bert_folder(corpus, tmp_path_factory):
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.recipes.bert_family import make_model

    tokenizer = train_tokenizer("wordpiece", corpus, vocab_size=700)
    torch.manual_seed(0)
    model = make_model("bert", tokenizer.vocab_size, {"pad": tokenizer.special_ids()["pad"]},
                       {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64})
    folder = tmp_path_factory.mktemp("bert") / "model"
    model.save_pretrained(folder, extra_files=tokenizer.files())
    return folder


@pytest.fixture(scope="module")
def classifier_folder(bert_folder, tmp_path_factory):
    """A three-label classifier head on the tiny BERT, saved as lmlab finetune saves it."""
    from lmlab.data.tokenizers import load_tokenizer

    torch.manual_seed(1)
    head = clf.SequenceClassifier.on(lmlab.load(bert_folder), ["neg", "neutral", "pos"], max_len=24)
    for p in head.out.parameters():  # weights away from zero, so the three probabilities differ
        torch.nn.init.normal_(p, std=1.0)
    folder = tmp_path_factory.mktemp("classifier") / "model"
    clf.save_classifier(head, load_tokenizer(bert_folder), folder, str(bert_folder), {"data": {}})
    return folder


@pytest.fixture(scope="module")
def gpt_folder(corpus, tmp_path_factory):
    from lmlab import registry
    from lmlab.data.tokenizers import train_tokenizer

    tokenizer = train_tokenizer("bytebpe", corpus, vocab_size=600)
    ids = tokenizer.special_ids()
    torch.manual_seed(0)
    row = registry.get("gpt")
    model = row.model_class()(row.config_from({"vocab_size": tokenizer.vocab_size, "max_length": 48,
                                               "bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
                                               "pad_token_id": ids["pad"]}))
    folder = tmp_path_factory.mktemp("gpt") / "model"
    model.save_pretrained(folder, extra_files=tokenizer.files())
    return folder


def test_every_pipeline_row_resolves():
    for task, spec in predict.PIPELINES.items():
        cls = predict._resolve(spec)
        assert callable(cls) and task
    with pytest.raises(UsageError, match="unknown pipeline task"):
        lmlab.pipeline("text-clasification", "nowhere")


def test_text_classification_equals_a_direct_forward_pass(classifier_folder):
    from lmlab.data.tokenizers import load_tokenizer

    pipe = lmlab.pipeline("text-classification", classifier_folder)
    model, tokenizer = lmlab.load(classifier_folder).eval(), load_tokenizer(classifier_folder)
    fmt = clf.text_format(tokenizer, "cls-sep")
    everything = pipe(TEXTS, batch_size=2, top_k=None)       # sorted by length, two per batch
    best = pipe(TEXTS, batch_size=2)
    for text, ranked, top in zip(TEXTS, everything, best):
        ids = torch.tensor(clf.encode_texts(tokenizer, fmt, [text], None, 24))
        with torch.no_grad():
            probs = torch.softmax(model(ids, torch.ones_like(ids)), -1)[0]      # one text, no padding
        assert [r["label"] for r in ranked] == [model.config.labels[i] for i in probs.argsort(descending=True)]
        torch.testing.assert_close(torch.tensor([r["score"] for r in ranked]), probs.sort(descending=True).values,
                                   rtol=0, atol=1e-5)
        assert sum(r["score"] for r in ranked) == pytest.approx(1.0, abs=1e-5)
        assert top == ranked[0]
    single = pipe(TEXTS[1])
    assert isinstance(single, dict) and single == best[1]       # a string in: its result out, as HF
    assert pipe([]) == []
    with pytest.raises(UsageError, match="top_k"):
        pipe(TEXTS, top_k=0)


def test_classifier_folder_default_task_and_compat_predict(classifier_folder):
    from lmlab.data.tokenizers import load_tokenizer

    assert predict.default_task(classifier_folder) == "text-classification"
    assert predict.model_folder(classifier_folder.parent) == classifier_folder   # lmlab finetune's --out works
    pairs = clf.predict(lmlab.load(classifier_folder), load_tokenizer(classifier_folder), TEXTS[:2])
    direct = lmlab.pipeline("text-classification", classifier_folder)(TEXTS[:2])
    assert [label for label, _ in pairs] == [r["label"] for r in direct]
    assert [p for _, p in pairs] == pytest.approx([r["score"] for r in direct], abs=1e-5)


def test_fill_mask_equals_the_mlm_head(bert_folder):
    from lmlab.data.tokenizers import load_tokenizer

    pipe = lmlab.pipeline(None, bert_folder)     # an MLM folder's default task
    assert predict.default_task(bert_folder) == "fill-mask"
    model, tokenizer = lmlab.load(bert_folder).eval(), load_tokenizer(bert_folder)
    texts = ["the film is [MASK] .", "a [MASK] movie with a thin plot and a great cast"]
    out = pipe(texts, top_k=4)
    mask_id = tokenizer.special_ids()["mask"]
    for text, predictions in zip(texts, out):
        ids = torch.tensor([[tokenizer.special_ids()["cls"], *tokenizer.encode(text), tokenizer.special_ids()["sep"]]])
        assert int((ids == mask_id).sum()) == 1      # the mask token is read as one special token
        with torch.no_grad():
            hidden, _ = model.encode(ids, torch.ones_like(ids))
            probs = torch.softmax(model.mlm_logits(hidden, ids == mask_id), -1)[0]
        top = probs.topk(4)
        assert [p["token"] for p in predictions] == top.indices.tolist()
        torch.testing.assert_close(torch.tensor([p["score"] for p in predictions]), top.values, rtol=0, atol=1e-5)
        assert predictions[0]["token_str"] == tokenizer.id_to_token(top.indices[0].item())
        assert "[MASK]" not in predictions[0]["sequence"]
    every = pipe(texts[0], top_k=tokenizer.vocab_size)          # the whole vocabulary: a distribution
    assert len(every) == tokenizer.vocab_size and sum(p["score"] for p in every) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(UsageError, match="has no"):
        pipe("no mask here")
    two = pipe("the [MASK] is [MASK] .", top_k=3)      # several masks: one list per mask, as HF's pipeline
    assert len(two) == 2 and all(len(k) == 3 for k in two)
    with pytest.raises(UsageError, match="cannot"):
        lmlab.pipeline("text-generation", bert_folder)


def test_text_generation_equals_greedy_generate(gpt_folder):
    from lmlab.data.tokenizers import load_tokenizer
    from lmlab.tasks.generation import GenerationConfig, generate

    pipe = lmlab.pipeline("text-generation", gpt_folder)
    model, tokenizer = lmlab.load(gpt_folder).eval(), load_tokenizer(gpt_folder)
    prompts = ["The film", "A long and rather boring story about", "It"]
    batched = pipe(prompts, batch_size=3, max_new_tokens=6)     # left-padded together
    for prompt, result in zip(prompts, batched):
        ids = torch.tensor([tokenizer.encode(prompt)])
        config = GenerationConfig(max_new_tokens=6, stop_token_ids=[model.config.eos_token_id],
                                  pad_token_id=model.config.pad_token_id)
        new = generate(model, ids, config=config)[0, ids.shape[1]:].tolist()
        if model.config.eos_token_id in new:
            new = new[:new.index(model.config.eos_token_id)]
        expected = tokenizer.decode(tokenizer.encode(prompt) + new, skip_specials=True)
        assert result["generated_text"].startswith(prompt)
        assert result["generated_text"] == prompt + expected[len(tokenizer.decode(tokenizer.encode(prompt))):]
    assert pipe(prompts[0], max_new_tokens=6) == batched[0]
