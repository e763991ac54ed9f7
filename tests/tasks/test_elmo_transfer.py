"""Feature-based transfer with ELMo (lmlab.tasks.features.ElmoFeatures, lmlab.recipes.elmo): the
features equal the biLM's scalar mix by hand, the biLM stays frozen while the mix and the head
learn, and `lmlab finetune ELMO_DIR DATA` -> `lmlab predict` works for classification and NER
tagging, from an lmlab ELMo folder and from AllenNLP's fixture (a small trained bilm-tf model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.errors import UsageError
from lmlab.models import elmo
from lmlab.tasks.features import ElmoFeatures, elmo_features, parse_layers

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "elmo"
TINY = {"char_embed_dim": 4, "filters": [[1, 4], [2, 8], [3, 8]], "n_highway": 1, "projection_dim": 8,
        "cell_dim": 16, "dropout": 0.0}
VOCAB = ["<unk>", "<s>", "</s>", "<pad>", "the", "cat", "sat", "on", "mat", "a", "dog"]


def _elmo() -> elmo.ElmoLM:
    torch.manual_seed(0)
    return elmo.build(elmo.ElmoConfig(**TINY), VOCAB, np.ones(len(VOCAB), dtype=np.int64)).eval()


def _by_hand(model: elmo.ElmoLM, sentences: list[list[str]], layers: list[int]) -> list[torch.Tensor]:
    """The scalar mix (equal weights at the start: the mean, gamma 1) of the biLM's layers, per word."""
    chars, mask = model.chars.batch(sentences)  # <S> .. </S> around each
    with torch.no_grad():
        hs, _, _ = model.bilm(chars, mask)
    picked = [hs[j] for j in layers]
    mix = sum(picked) / len(picked)
    return [mix[i, 1:len(s) + 1] for i, s in enumerate(sentences)]


def test_features_equal_the_scalar_mix_by_hand_with_and_without_framing():
    model = _elmo()
    sentences = [["the", "cat", "sat"], ["a", "zebra", "on", "the", "mat"]]  # "zebra": outside the LM vocabulary
    for layers_text, layers in (("", [0, 1, 2]), ("top", [2]), ("0,1", [0, 1])):
        feats, tok = elmo_features(model, [" ".join(s) for s in sentences], lowercase=True, vocab=VOCAB,
                                   layers=layers_text)
        ids = [tok.encode_tokens(s) for s in sentences]
        assert tok.unk_id not in ids[1]  # every word of the task's texts has its own id, spelt by its characters
        T = max(map(len, ids))
        batch = torch.tensor([row + [3] * (T - len(row)) for row in ids])
        mask = torch.tensor([[1] * len(row) + [0] * (T - len(row)) for row in ids])
        got, _ = feats.eval().encode(batch, mask)
        for i, want in enumerate(_by_hand(model, sentences, layers)):
            torch.testing.assert_close(got[i, :len(sentences[i])], want, rtol=0, atol=1e-6)
            assert not got[i, len(sentences[i]):].any()
    framed, tok = elmo_features(model, ["the cat sat"], lowercase=True, boundaries=False)
    ids = torch.tensor([tok.encode_tokens(["<s>", "the", "cat", "sat", "</s>"])])  # the tagging frame
    got, _ = framed.eval().encode(ids)
    torch.testing.assert_close(got[0, 1:4], _by_hand(model, [["the", "cat", "sat"]], [0, 1, 2])[0], rtol=0, atol=1e-6)


def test_layers_option_parses_and_refuses_bad_values():
    assert parse_layers("", 2) == [] and parse_layers("top", 2) == [2] and parse_layers("1", 2) == [1]
    for bad in ("3", "x", "1,1"):
        with pytest.raises(UsageError, match="--layers"):
            parse_layers(bad, 2)


def test_the_bilm_stays_frozen_while_the_mix_and_a_bilstm_learn():
    from lmlab.tasks.classification import SequenceClassifier

    feats, tok = elmo_features(_elmo(), ["the cat sat", "a dog sat on the mat"], lowercase=True, lstm_hidden=4)
    clf = SequenceClassifier.on(feats, ["neg", "pos"], pooling="mean")
    ids = torch.tensor([tok.encode_tokens(["the", "cat", "sat", "<pad>"]), tok.encode_tokens(["a", "dog", "sat", "on"])])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    opt = torch.optim.SGD([p for p in clf.parameters() if p.requires_grad], lr=0.5)
    clf.train()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf(ids, mask), torch.tensor([0, 1])).backward()
        opt.step()
    changed = {k for k, v in clf.state_dict().items() if not torch.equal(before[k], v)}
    assert {"encoder.elmo.mix.scalars", "out.weight"} <= changed and any(k.startswith("encoder.lstm.") for k in changed)
    assert not any(k.startswith(("encoder.elmo.token_encoder", "encoder.elmo.forward_lm", "encoder.elmo.backward_lm"))
                   for k in changed)
    assert not clf.encoder.elmo.training  # no dropout in the frozen biLM


def _reviews_csv(path: Path, n: int = 80) -> Path:
    """A small slice of rotten-tomatoes (real reviews) as a CSV with its own split column."""
    from lmlab.data import sources

    docs = [d for d in sources.load("rotten-tomatoes").split().train if d.meta.get("label") in ("rotten", "fresh")][:n]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "split"])
        for i, d in enumerate(docs):
            w.writerow([d.text, d.meta["label"], "test" if i % 5 == 0 else "valid" if i % 5 == 1 else "train"])
    return path


def test_lmlab_finetune_an_elmo_folder_then_predict(tmp_path, cli):
    import lmlab

    elmo.save(_elmo(), tmp_path / "elmo", VOCAB)
    data = _reviews_csv(tmp_path / "reviews.csv")
    out = tmp_path / "ft"
    proc = cli("finetune", str(tmp_path / "elmo"), str(data), "--steps", "6", "--batch-size", "8", "--lr", "1e-2",
               "--layers", "1", "--split-field", "split", "--out", str(out), "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_train"] == 48 and 0 <= scores["accuracy"] <= 1
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["config"]["encoder_family"] == "elmo-features" and config["config"]["encoder"]["layers"] == [1]
    proc = cli("predict", str(out / "model"), "a good film")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["label"] in ("rotten", "fresh")
    again = lmlab.load(out / "model").eval()
    assert isinstance(again.encoder, ElmoFeatures)


def test_allennlp_fixture_feeds_a_tagger_that_learns_wnut16(tmp_path):
    """The fixture's trained biLM (cased, no vocabulary) as frozen features for NER on real tweets:
    the tagger's loss falls; the folder reloads and tags words."""
    pytest.importorskip("h5py")
    import shutil

    from lmlab.recipes.elmo import finetune_tagger
    from lmlab.tasks import tagging

    folder = tmp_path / "bilm"
    folder.mkdir()
    shutil.copy(FIXTURE / "options.json", folder / "options.json")
    shutil.copy(FIXTURE / "lm_weights.hdf5", folder / "weights.hdf5")
    data = tagging.builtin_data("wnut16")
    spec = tagging.TaggingSpec(steps=25, batch_size=16, lr=2e-2, max_train=96, max_test=24, seed=0, threads=1)
    scores = finetune_tagger(folder, data, spec, tmp_path / "ner", lstm_hidden=16)
    first = json.loads((tmp_path / "ner" / "train" / "metrics.jsonl").read_text().splitlines()[0])
    assert scores["train_loss"] < 0.5 * first["loss"], (first, scores["train_loss"])
    assert scores["token_accuracy"] > 0.8
    import lmlab
    from lmlab.data.tokenizers import load_tokenizer

    tagger = lmlab.load(tmp_path / "ner" / "model")
    assert isinstance(tagger.encoder, ElmoFeatures) and tagger.encoder.lstm is not None
    words = ["I", "saw", "Obama", "in", "London"]
    tags = tagging.tag_words(tagger, load_tokenizer(tmp_path / "ner" / "model"), [words])
    assert len(tags[0]) == len(words) and all(label in tagger.config.labels for label, _ in tags[0])
