"""lmlab.interop.allennlp against AllenNLP's ELMo fixture (made by bilm-tf; tests/fixtures/elmo/README.md).

The biLM's top layer must equal ``lm_embeddings_{0,1,2}.hdf5`` for all 30 sentences, run as they
were made (batches of 3, the LSTM state carried from batch to batch), and the char-CNN token
vectors must equal ``elmo_token_embeddings.hdf5``; both with AllenNLP's own check
(``numpy.allclose(atol=1e-6)``). Writing the weights back and reading them gives the same model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from lmlab.errors import CheckpointError, ConfigError  # noqa: E402
from lmlab.interop.allennlp import load_allennlp, save_allennlp  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "elmo"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def elmo():
    return load_allennlp(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5")


def _expected(k: int, i: int) -> np.ndarray:
    with h5py.File(FIXTURE / f"lm_embeddings_{k}.hdf5", "r") as fin:
        both = fin[str(i)][...]  # (2, n, P): forward, backward
    return np.concatenate([both[0], both[1]], axis=-1)  # (n, 2P)


def _run_batches(model, carry: bool):
    sentences = json.loads((FIXTURE / "sentences.json").read_text())
    state, worst, checked = None, 0.0, 0
    results = []
    with torch.no_grad():
        for i in range(10):
            batch = [sentences[k][i].split() for k in range(3)]
            chars, mask = model.chars.batch(batch)  # <S> .. </S> around each sentence
            layers, mask, new_state = model.bilm(chars, mask, state if carry else None)
            state = new_state
            assert mask.sum(1).tolist() == [len(s) + 2 for s in batch]
            for k in range(3):
                got = layers[-1][k, 1:len(batch[k]) + 1].numpy()  # boundaries removed
                results.append((got, _expected(k, i)))
    for got, want in results:
        worst = max(worst, float(np.abs(got - want).max()))
        checked += 1
    return results, worst, checked


def test_top_layer_equals_bilm_tf_for_all_30_sentences_with_carried_state(elmo):
    results, worst, checked = _run_batches(elmo, carry=True)
    assert checked == 30
    for got, want in results:
        assert got.shape == want.shape
        assert np.allclose(got, want, atol=1e-6)  # AllenNLP's own check
    assert worst < 2e-6, worst  # measured 1.19e-6: float32 rounding of values up to the clip, 3.0
    # the carried state is part of the reference: fresh states per batch do not reproduce it
    fresh, _, _ = _run_batches(elmo, carry=False)
    assert not all(np.allclose(g, w, atol=1e-4) for g, w in fresh)


def test_char_cnn_token_embeddings_equal_bilm_tf(elmo):
    words = (FIXTURE / "vocab_test.txt").read_text(encoding="utf-8").strip().split("\n")
    with h5py.File(FIXTURE / "elmo_token_embeddings.hdf5", "r") as fin:
        expected = fin["embedding"][...]
    assert len(words) == expected.shape[0] == 458
    with torch.no_grad():
        got = elmo.token_embeddings(elmo.chars.words(words)[None])[0].numpy()  # (458, 16)
    assert np.allclose(got, expected, atol=1e-6)


def test_character_ids_are_numbered_as_bilm_tf():
    from lmlab.models.elmo import CharacterIds

    chars = CharacterIds(50)
    ids = chars.word("ab")
    assert ids[:4] == [259, 98, 99, 260] and ids[4:] == [261] * 46  # bow, 'a'+1, 'b'+1, eow, pad
    assert chars.word("<S>")[:3] == [259, 257, 260] and chars.word("</S>")[:3] == [259, 258, 260]
    assert chars.word("<s>") == chars.word("<S>")
    long = chars.word("x" * 100)
    assert len(long) == 50 and long[0] == 259 and long[1:49] == [121] * 48 and long[49] == 260
    assert chars.word("中")[:5] == [259, 0xE4 + 1, 0xB8 + 1, 0xAD + 1, 260]  # UTF-8 bytes


def test_write_then_read_gives_the_same_model(elmo, tmp_path):
    options, weights = save_allennlp(elmo, tmp_path / "out")
    again = load_allennlp(options, weights)
    for (k, a), (_, b) in zip(elmo.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    with h5py.File(weights, "r") as a, h5py.File(FIXTURE / "lm_weights.hdf5", "r") as b:
        names = []
        b.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            np.testing.assert_allclose(a[name][...], b[name][...], rtol=0, atol=1e-6, err_msg=name)


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_allennlp(tmp_path / "none.json", FIXTURE / "lm_weights.hdf5")
    (tmp_path / "o.json").write_text('{"lstm": {}}')
    with pytest.raises(ConfigError, match="not a bilm-tf options file"):
        load_allennlp(tmp_path / "o.json", FIXTURE / "lm_weights.hdf5")
    with h5py.File(tmp_path / "w.hdf5", "w") as fout:
        fout.create_dataset("char_embed", data=np.zeros((261, 4), np.float32))
    with pytest.raises(CheckpointError, match="no dataset 'CNN/W_cnn_0'"):
        load_allennlp(FIXTURE / "options.json", tmp_path / "w.hdf5")


# ----------------------------------------------------------------------------- scoring with a softmax


def test_the_fixture_has_no_softmax_so_it_says_what_is_missing(elmo, tmp_path):
    from lmlab.errors import UsageError

    with pytest.raises(UsageError, match=r"no softmax \(softmax/W, softmax/b\) and no vocabulary file"):
        elmo.score_sentences([[1, 2]])
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<S>\n</S>\n<UNK>\nthe\n")
    with pytest.raises(CheckpointError, match="no softmax"):
        load_allennlp(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", vocab)
    vocab.write_text("the\ncat\n")
    with pytest.raises(CheckpointError, match="not a bilm-tf vocabulary"):
        load_allennlp(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", vocab)


WORDS = ["<S>", "</S>", "<UNK>", "the", "cat", "sat", "on", "mat"]


def _with_softmax(folder: Path, softmax: bool = True, vocab: bool = True):
    """A bilm-tf folder: the fixture's options and weights, plus a made-up softmax/W, softmax/b over
    WORDS (the fixture has none) and their vocab.txt. -> (folder, W, b)."""
    import shutil

    folder.mkdir()
    shutil.copy(FIXTURE / "options.json", folder / "options.json")
    shutil.copy(FIXTURE / "lm_weights.hdf5", folder / "weights.hdf5")
    g = np.random.default_rng(0)
    W, b = g.normal(size=(len(WORDS), 16)).astype(np.float32), g.normal(size=len(WORDS)).astype(np.float32)
    if softmax:
        with h5py.File(folder / "weights.hdf5", "a") as fout:
            fout.create_dataset("softmax/W", data=W)
            fout.create_dataset("softmax/b", data=b)
    if vocab:
        (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return folder, W, b


def test_weights_with_a_softmax_and_a_vocabulary_score_as_by_hand(tmp_path):
    """bilm-tf's softmax/W, softmax/b (made up here: the fixture has none) + its vocabulary file:
    forward and backward log-probabilities equal log_softmax(W h + b) of the biLM's top layer."""
    from lmlab.recipes.elmo import load_any, perplexities

    folder, W, b = _with_softmax(tmp_path / "bilm")
    model, lowercase = load_any(folder)
    words = WORDS
    assert not lowercase and model.config.vocab_size == len(words)
    assert torch.equal(model.spelling[2], model.chars.words(["<UNK>"])[0])  # bilm-tf's spelling of <UNK>
    sentence = ["the", "cat", "sat", "on", "the", "mat"]
    ids = [words.index(w) for w in sentence]
    fwd, bwd = model.score_both([ids + [1]])  # w_1 .. w_n </s>, as encode_sentences writes them
    with torch.no_grad():
        layers, _, _ = model.bilm(model.chars.batch([sentence])[0])
    top = layers[-1][0]  # (n + 2, 2P): <S> w_1 .. w_n </S>
    logp = lambda h: torch.log_softmax(h @ torch.from_numpy(W).T + torch.from_numpy(b), -1)
    full = [0, *ids, 1]
    want_f = torch.stack([logp(top[p, :16])[full[p + 1]] for p in range(len(ids) + 1)])
    want_b = torch.stack([logp(top[p, 16:])[full[p - 1]] for p in range(2, len(ids) + 2)] +
                         [logp(top[1, 16:])[0]])
    torch.testing.assert_close(fwd[0], want_f, rtol=0, atol=1e-5)
    torch.testing.assert_close(bwd[0], want_b, rtol=0, atol=1e-5)
    vocab = ["<s>", "</s>", "<unk>", *words[3:]]
    ppl = perplexities(model, [sentence, ["the", "dog", "sat"]], vocab)
    assert ppl["forward"].perplexity > 1 and ppl["forward"].oov == 1  # "dog" scored as <UNK>
    options, weights = save_allennlp(model, tmp_path / "out")  # the softmax goes back out
    again = load_allennlp(options, weights, folder / "vocab.txt")
    for (k, x), (_, y) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(x, y), k


def test_eval_ppl_on_a_bilm_tf_folder_and_one_line_errors(tmp_path, cli):
    """``lmlab eval ppl BILM_TF_FOLDER FILE``: the mean perplexity (and forward / backward) equal
    the library's; without the softmax or without vocab.txt, a one-line error and no traceback."""
    import math

    from lmlab.recipes.elmo import load_any, perplexities

    folder, _, _ = _with_softmax(tmp_path / "bilm")
    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]]
    (tmp_path / "text.txt").write_text("\n".join(" ".join(s) for s in sentences) + "\n")
    proc = cli("eval", "ppl", str(folder), str(tmp_path / "text.txt"), "--pretokenized", "--json")
    assert proc.returncode == 0, proc.stderr
    reported = json.loads(proc.stdout)
    model, _ = load_any(folder)
    want = perplexities(model, sentences, ["<s>", "</s>", "<unk>", *WORDS[3:]])
    assert reported["family"] == "elmo (bilm-tf)" and reported["tokens"] == 11 and reported["oov"] == 1
    assert reported["ppl"] == pytest.approx(want["mean"].perplexity, rel=1e-5)
    assert reported["forward_perplexity"] == pytest.approx(want["forward"].perplexity, rel=1e-5)
    assert reported["backward_perplexity"] == pytest.approx(want["backward"].perplexity, rel=1e-5)
    assert math.isfinite(reported["ppl"]) and reported["ppl"] > 1
    for name, kwargs, message in (("nosoftmax", dict(softmax=False), "no softmax (softmax/W, softmax/b)"),
                                  ("novocab", dict(vocab=False), "no vocab.txt beside them")):
        bad, _, _ = _with_softmax(tmp_path / name, **kwargs)
        proc = cli("eval", "ppl", str(bad), str(tmp_path / "text.txt"), "--pretokenized")
        assert proc.returncode != 0
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
