"""Every row of the family table, run: it resolves, its tiny model round-trips save -> lmlab.load
with equal outputs, its recipe builds a training job on a 20-document slice, and every capability
it declares works on the reloaded model.

A misspelt module or attribute in a row fails here (nothing in the CLI swallows it any more).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import lmlab
from lmlab import registry
from lmlab.errors import ConfigError, UsageError

ROWS = sorted(registry.FAMILIES)
SENTENCES = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "sat", "on", "a", "log"],
             ["the", "dog", "ate", "the", "cat"], ["a", "cat", "ate", "a", "dog"]] * 5


def test_unknown_family_suggests():
    with pytest.raises(ConfigError, match="did you mean 'bert'"):
        registry.get("bertt")


def test_unknown_capability_is_refused():
    with pytest.raises(ConfigError, match="unknown capability 'fly'"):
        registry.Family("x", "m:C", capabilities=frozenset({"fly"}))


def test_lmlab_load_refuses_what_it_cannot_read(tmp_path):
    import json

    from lmlab.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        lmlab.load(tmp_path / "none")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(CheckpointError, match="no \"family\" key"):
        lmlab.load(tmp_path / "f")
    folder = _tiny("gpt", tmp_path)[1](tmp_path / "g")
    raw = json.loads((folder / "config.json").read_text())
    raw["config"]["n_layer"] = 2
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="n_layer"):
        lmlab.load(folder)


def test_a_classifier_of_the_previous_release_says_how_to_redo_it(tmp_path):
    from lmlab.errors import CheckpointError
    from lmlab.pretrained import save_model_folder

    folder = tmp_path / "old"
    save_model_folder(folder, "x", {}, {"w": torch.zeros(1)})
    (folder / "config.json").write_text('{"family": "rotten-tomatoes-classifier", "base": "runs/bert/model", '
                                        '"task": "rotten-tomatoes", "classes": ["rotten", "fresh"], "max_len": 128}')
    with pytest.raises(CheckpointError, match="lmlab finetune runs/bert/model rotten-tomatoes again"):
        lmlab.load(folder)


def test_folders_of_the_previous_format_still_load(tmp_path):
    """lmlab 0.2 wrote {"family", **fields}; lmlab.load reads both."""
    import json

    model = lmlab.load(_tiny("gpt", tmp_path)[1](tmp_path / "new"))
    raw = json.loads((tmp_path / "new" / "config.json").read_text())
    (tmp_path / "new" / "config.json").write_text(json.dumps({"family": "gpt", **raw["config"]}))
    old = lmlab.load(tmp_path / "new")
    ids = torch.randint(5, 50, (1, 6))
    assert torch.equal(model.eval()(ids), old.eval()(ids))


@pytest.mark.parametrize("name", ROWS)
def test_row_resolves(name):
    row = registry.get(name)
    assert row.name == name and row.summary
    assert callable(row.model_class())
    if row.config:
        assert dataclasses.is_dataclass(row.config_class())
    presets = row.preset_table()
    assert isinstance(presets, dict)
    if row.base_preset:
        assert row.base_preset in presets
    if row.recipe:
        assert callable(row.recipe_function())
    if row.demo:
        assert callable(row.demo_function()) and row.demo_name
    if row.hf:
        assert callable(registry._resolve(row.hf)) and row.hf_types
    if row.loader:
        assert callable(registry._resolve(row.loader))


# ----------------------------------------------------------------------------- tiny models, per kind


def _word_vocab(size: int) -> list[str]:
    words = sorted({w for s in SENTENCES for w in s})
    return ["<unk>", "<s>", "</s>", "<pad>", *words, *[f"w{i}" for i in range(size - 4 - len(words))]]


def _tiny(name: str, tmp_path):
    """(model, save(folder) -> path to load) for a tiny model of the row."""
    row = registry.get(name)
    torch.manual_seed(0)
    if name == "ngram":
        from lmlab.ngram import build, write_arpa

        model = build(SENTENCES, order=2, smoothing="mkn")
        return model, lambda folder: write_arpa(model, folder.with_suffix(".arpa")) or folder.with_suffix(".arpa")
    if name == "adaptive":
        from lmlab.ngram import build, write_arpa
        from lmlab.ngram.adaptive import CacheLM, save_cache

        base = build(SENTENCES, order=2, smoothing="mkn")
        model = CacheLM(base, lam=0.8, size=10)

        def save(folder):
            folder.mkdir(parents=True)
            write_arpa(base, folder / "base.arpa")
            return save_cache(model, folder / "base.arpa", folder / "cache.json")
        return model, save
    if name in ("nnlm", "rnnlm", "elmo"):
        import importlib

        module = importlib.import_module(f"lmlab.models.{name}")
        config = row.config_from()
        vocab = _word_vocab(config.vocab_size)
        model = module.build(config, vocab, np.ones(len(vocab), dtype=np.int64))
        return model.eval(), lambda folder: module.save(model, folder, vocab) and folder
    if name in ("word2vec", "fasttext"):
        model = row.model_class()(row.config_from({"vector_size": 8, "min_count": 1, "epochs": 1, "workers": 1}))
        model.fit(SENTENCES)
        return model, lambda folder: model.save(folder)
    if name == "fasttext-classifier":
        model = row.model_class()(row.config_from({"vector_size": 8, "epochs": 2, "min_count": 1, "bucket": 1000}))
        model.fit(SENTENCES, ["a" if s[0] == "a" else "the" for s in SENTENCES])
        return model, lambda folder: model.save(folder)
    model = row.model_class()(row.config_from())
    return model.eval(), lambda folder: model.save_pretrained(folder)


def _outputs(name: str, model):
    """Something deterministic each kind of model computes, to compare before and after reloading."""
    torch.manual_seed(0)
    if name in ("ngram", "adaptive"):
        from lmlab.ngram.adaptive import evaluate_adapted

        if name == "ngram":
            return model.evaluate(SENTENCES[:3]).log10_prob
        return evaluate_adapted(model, [SENTENCES[:3]]).log10_prob
    if name in ("word2vec", "fasttext"):
        return model.wv.vectors
    if name == "fasttext-classifier":
        return model.predict_scores(SENTENCES[:3])
    config = model.config
    if name == "transformer":
        src = torch.randint(4, config.src_vocab_size, (2, 5))
        tgt = torch.randint(4, config.tgt_vocab_size, (2, 4))
        return model(src, tgt)
    if name == "t5":
        return model(torch.randint(2, config.vocab_size, (2, 5)), torch.randint(2, config.vocab_size, (2, 4)))
    vocab = getattr(config, "vocab_size", None) or getattr(config, "encoder", {}).get("vocab_size") or \
        config.gpt.vocab_size
    ids = torch.randint(5, vocab, (2, 7))
    with torch.no_grad():
        if name in ("nnlm", "rnnlm"):
            return torch.cat(model.score_sentences(ids.tolist()))
        if "encode" in registry.get(name).capabilities:
            return model.encode(ids)
        if name in ("classifier", "tagger"):
            return model(ids, torch.ones_like(ids))
        return model(ids)


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a):
        return all(_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
                   if isinstance(getattr(a, f.name), torch.Tensor | np.ndarray | float))
    return a == b


@pytest.mark.parametrize("name", ROWS)
def test_tiny_model_round_trips_through_lmlab_load(name, tmp_path):
    model, save = _tiny(name, tmp_path)
    path = save(tmp_path / "saved")
    again = lmlab.load(path)
    assert type(again) is type(model)
    if hasattr(again, "eval"):
        again.eval()
    assert _equal(_outputs(name, model), _outputs(name, again))
    for capability in sorted(registry.get(name).capabilities):
        CAPABILITY_CHECKS[capability](name, again)


# ----------------------------------------------------------------------------- capabilities


def _check_score(name, model):
    if name == "ngram":
        ev = model.evaluate(SENTENCES[:2])
        assert ev.tokens == sum(len(s) + 1 for s in SENTENCES[:2]) and 1 < ev.perplexity < 1e4
        return
    ids = [[5, 6, 7], [8, 9]]
    scores = model.score_sentences(ids)
    assert [len(s) for s in scores] == [3, 2]
    assert all(bool((s <= 0).all()) and bool(torch.isfinite(s).all()) for s in scores)


def _check_generate(name, model):
    from lmlab.tasks.generation import GenerationConfig, generate

    prompt = torch.tensor([[5, 6, 7]])
    out = generate(model, prompt, config=GenerationConfig(max_new_tokens=4))
    assert out.shape == (1, 7) and torch.equal(out[:, :3], prompt)


def _check_translate(name, model):
    from lmlab.tasks.generation import translate

    vocab = getattr(model.config, "src_vocab_size", None) or model.config.vocab_size
    out = translate(model, torch.randint(4, vocab, (2, 5)), max_new_tokens=4)
    assert out.shape[0] == 2 and out.shape[1] <= 4


def _check_encode(name, model):
    ids = torch.randint(5, 50, (2, 6))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 4:] = False
    hidden, pooled = model.encode(ids, mask)
    assert hidden.shape[:2] == (2, 6)
    assert pooled is None or pooled.shape[0] == 2


def _check_fill_mask(name, model):
    from lmlab.tasks.predict import masked_lm_logits

    ids = torch.randint(5, 50, (2, 6))
    logits = masked_lm_logits(model, ids)  # ELECTRA: its generator; the others: mlm_logits on encode
    assert logits.shape == (2, 6, model.config.vocab_size)
    probs = torch.softmax(logits.float(), dim=-1).sum(-1)
    torch.testing.assert_close(probs, torch.ones_like(probs))


def _check_vectors(name, model):
    wv = model.wv
    assert wv.vectors.shape[0] == len(wv.words) and np.isfinite(wv.vectors).all()


def _check_classify(name, model):
    if name == "fasttext-classifier":
        assert set(model.predict(SENTENCES[:4])) <= set(model.labels)
        return
    ids = torch.randint(5, 50, (2, 6))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    logits = model(ids, mask) if name == "classifier" else model(ids)
    assert logits.shape == (2, model.config.num_labels)


def _check_tag(name, model):
    ids = torch.randint(5, 50, (2, 6))
    logits = model(ids, torch.ones_like(ids))
    assert logits.shape == (2, 6, model.config.num_labels)


CAPABILITY_CHECKS = {"score": _check_score, "generate": _check_generate, "translate": _check_translate,
                     "encode": _check_encode, "fill-mask": _check_fill_mask, "vectors": _check_vectors,
                     "classify": _check_classify, "tag": _check_tag}


def test_every_capability_has_a_check():
    assert set(CAPABILITY_CHECKS) == set(registry.CAPABILITIES)


def test_a_command_refuses_a_family_without_its_capability():
    with pytest.raises(UsageError, match="families that can: .*gpt"):
        registry.get("bert").require("generate", "lmlab generate")


# ----------------------------------------------------------------------------- recipes


RECIPE_TABLES = {  # the smallest run of each recipe: 20 documents, tiny sizes
    "nnlm": {"data": {"corpus": "wiki-vital-small", "batch_size": 8}, "tokenizer": {"vocab_size": 300},
             "model": {"embed_dim": 8, "hidden_dim": 8}},
    "rnnlm": {"data": {"corpus": "wiki-vital-small", "batch_size": 4, "bptt": 8}, "tokenizer": {"vocab_size": 300},
              "model": {"embed_dim": 8, "hidden_dim": 8, "layers": 1}},
    "elmo": {"data": {"corpus": "wiki-vital-small", "batch_size": 2, "bptt": 8}, "tokenizer": {"vocab_size": 300},
             "model": {"char_embed_dim": 4, "filters": [[1, 4], [2, 8]], "projection_dim": 8, "cell_dim": 16}},
    "transformer": {"data": {"task": "g2p", "batch_size": 2}, "model": {"d_model": 16, "n_heads": 2, "d_ff": 32}},
    "t5": {"data": {"corpus": "wiki-vital-small", "inputs_length": 16, "batch_size": 2}, "tokenizer": {"vocab_size": 300},
           "model": {"d_model": 16, "d_kv": 4, "n_heads": 2, "d_ff": 32}},
    "gpt": {"data": {"corpus": "wiki-vital-small", "max_documents": 20, "seq_len": 16, "batch_size": 2},
            "tokenizer": {"vocab_size": 300}, "model": {"d_model": 16, "n_layers": 1, "n_heads": 2}},
    "transfo-xl": {"data": {"corpus": "wiki-vital-small", "batch_size": 4, "bptt": 8},
                   "tokenizer": {"vocab_size": 300},
                   "model": {"cutoffs": [100], "d_model": 16, "d_embed": 16, "n_head": 2, "d_head": 8,
                             "d_inner": 32, "n_layer": 1, "mem_len": 8}},
}
for _family in ("bart", "mass"):
    RECIPE_TABLES[_family] = {"data": {"corpus": "wiki-vital-small", "max_documents": 20, "seq_len": 32,
                                       "batch_size": 2, "eval_documents": 0},
                              "tokenizer": {"vocab_size": 300}, "model": {"d_model": 16, "n_heads": 2, "d_ff": 32}}
for _family in ("bert", "roberta", "spanbert", "albert", "electra"):
    RECIPE_TABLES[_family] = {"data": {"corpus": "wiki-vital-small", "max_documents": 20, "seq_len": 32,
                                       "batch_size": 2},
                              "tokenizer": {"vocab_size": 300}, "model": {"d_model": 16, "n_layers": 1, "n_heads": 2,
                                                                          "d_ff": 32}}
RECIPE_TABLES["xlnet"] = {"data": {"corpus": "wiki-vital-small", "max_documents": 20, "seq_len": 16,
                                  "batch_size": 2},
                         "tokenizer": {"vocab_size": 300}, "model": {"d_model": 16, "n_layers": 1, "n_heads": 2,
                                                                     "d_ff": 32}}


def test_every_recipe_has_a_smoke_table():
    assert set(RECIPE_TABLES) == set(registry.trainable())


@pytest.mark.parametrize("name", registry.trainable())
def test_recipe_builds_a_job_on_a_small_slice(name, monkeypatch):
    from lmlab.data import sources
    from lmlab.data.corpus import Splits
    from lmlab.recipes.run import RunFile
    from lmlab.train.trainer import TrainingJob

    original = sources.load

    class Slice:  # the corpus a recipe loads, cut to 20 training documents (and 5 valid, 5 test)
        def __init__(self, corpus):
            self.corpus = corpus

        def split(self, *args, **kwargs):
            splits = self.corpus.split(*args, **kwargs)
            return Splits(train=splits.train[:20], valid=splits.valid[:5], test=splits.test[:5])

        def __getattr__(self, name):
            return getattr(self.corpus, name)

    monkeypatch.setattr(sources, "load", lambda name, *args, **kwargs: Slice(original(name, *args, **kwargs)))
    run = RunFile({"family": name, **RECIPE_TABLES[name], "train": {"max_steps": 1}}, name=name)
    job = registry.get(name).recipe_function()(run)
    assert isinstance(job, TrainingJob)
    assert run.unread_tables() == []
    batch = job.train_source.batch(0, 0, 1)
    ids = batch[0] if isinstance(batch, tuple | list) else batch
    assert ids is not None
