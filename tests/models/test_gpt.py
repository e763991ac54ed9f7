"""GPT: presets, causality, padding, tied weights, init, save/load, classifier head, learning on real text."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmlab.errors import CheckpointError, ConfigError, UsageError
from lmlab.models.gpt import GPTClassifier, GPTClassifierConfig, GPTConfig, GPTLanguageModel, pool, preset

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kenlm"  # wiki-vital sentences, tokenized


def tiny(**overrides) -> GPTConfig:
    values = {"vocab_size": 50, "max_length": 32, "d_model": 32, "n_layers": 2, "n_heads": 4, "dropout": 0.0, "attn_dropout": 0.0}
    values.update(overrides)
    return GPTConfig(**values)


def test_gpt2_preset_has_the_published_parameter_count():
    with torch.device("meta"):
        gpt2 = GPTLanguageModel(preset("gpt2"))
        gpt1 = GPTLanguageModel(preset("gpt1"))
    assert gpt2.num_parameters() == 124_439_808      # Hugging Face "gpt2" (tied), 124M
    assert gpt1.num_parameters() == 116_534_784      # 40,478 x 768 + 512 x 768 + 12 post-LN blocks
    assert not gpt1.config.final_norm and gpt1.config.norm_position == "post"
    with pytest.raises(ConfigError, match="unknown GPT preset"):
        preset("gpt3")


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="divisible"):
        GPTLanguageModel(tiny(n_heads=5))
    with pytest.raises(ConfigError, match="unknown config key"):
        preset("gpt-tiny", d_modle=3)


@pytest.mark.parametrize("style", ["pre", "post"])
def test_no_position_sees_the_future(style):
    torch.manual_seed(0)
    model = GPTLanguageModel(tiny(norm_position=style, final_norm=style == "pre")).eval()
    ids = torch.randint(0, 50, (2, 12))
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 50
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=1e-6, rtol=0)
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-3


def test_left_and_right_padding_leave_real_positions_unchanged():
    torch.manual_seed(0)
    model = GPTLanguageModel(tiny()).eval()
    ids = torch.randint(1, 50, (1, 6))
    alone = model(ids)
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    left_mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    torch.testing.assert_close(model(left, attention_mask=left_mask)[:, 3:], alone, atol=1e-5, rtol=0)
    right = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    right_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0, 0]])
    torch.testing.assert_close(model(right, attention_mask=right_mask)[:, :6], alone, atol=1e-5, rtol=0)


def test_tied_embeddings_and_scaled_residual_init():
    torch.manual_seed(0)
    config = tiny(vocab_size=500, d_model=128, n_layers=8, n_heads=4)
    model = GPTLanguageModel(config)
    assert model.output_weight is model.gpt.token_embedding.weight
    assert not any(name.startswith("lm_head") for name in model.state_dict())
    residual_std = 0.02 / math.sqrt(2 * 8)
    out_std = torch.cat([b.self_attn.out.weight.flatten() for b in model.gpt.blocks]).std().item()
    fc_std = torch.cat([b.feed_forward.fc_in.weight.flatten() for b in model.gpt.blocks]).std().item()
    assert math.isclose(out_std, residual_std, rel_tol=0.05)
    assert math.isclose(fc_std, 0.02, rel_tol=0.05)
    untied = GPTLanguageModel(tiny(tie_embeddings=False))
    assert "lm_head.weight" in untied.state_dict()


def test_too_long_input_is_refused():
    model = GPTLanguageModel(tiny(max_length=8))
    with pytest.raises(UsageError, match="longer than the model's 8 positions"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = GPTLanguageModel(tiny(norm_position="post", final_norm=False)).eval()
    folder = model.save_pretrained(tmp_path / "m", extra_files={"tokenizer/vocab.txt": b"a\nb\n"})
    saved = json.loads((folder / "config.json").read_text())
    assert saved["family"] == "gpt" and saved["config"]["norm_position"] == "post"
    loaded = GPTLanguageModel.from_pretrained(folder).eval()
    ids = torch.randint(0, 50, (2, 10))
    assert torch.equal(model(ids), loaded(ids))
    assert (folder / "tokenizer" / "vocab.txt").read_bytes() == b"a\nb\n"
    with pytest.raises(CheckpointError, match="not 'gpt-classifier'"):
        GPTClassifier.from_pretrained(folder)
    saved["config"]["n_layers"] = 3
    (folder / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match="missing"):
        GPTLanguageModel.from_pretrained(folder)


def test_classifier_pooling_and_round_trip(tmp_path):
    torch.manual_seed(0)
    lm = GPTLanguageModel(tiny())
    for how in ("last", "mean"):
        clf = GPTClassifier.from_language_model(lm, num_labels=3, pooling=how).eval()
        assert torch.equal(clf.gpt.token_embedding.weight, lm.gpt.token_embedding.weight)
        ids = torch.randint(1, 50, (1, 5))
        alone = clf(ids)
        left = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids], dim=1)
        right = torch.cat([ids, torch.zeros(1, 2, dtype=torch.long)], dim=1)
        torch.testing.assert_close(clf(left, torch.tensor([[0, 0, 1, 1, 1, 1, 1]])), alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(clf(right, torch.tensor([[1, 1, 1, 1, 1, 0, 0]])), alone, atol=1e-5, rtol=0)
    states = torch.arange(12.0).view(1, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0]])
    assert pool(states, mask, "last").tolist() == [[6.0, 7.0, 8.0]]
    assert pool(states, mask, "mean").tolist() == [[3.0, 4.0, 5.0]]
    clf.save_pretrained(tmp_path / "c")
    loaded = GPTClassifier.from_pretrained(tmp_path / "c").eval()
    assert loaded.config.num_labels == 3 and loaded.config.pooling == "mean"
    assert torch.equal(loaded(ids), clf(ids))
    with pytest.raises(ConfigError):
        GPTClassifier(GPTClassifierConfig(gpt=tiny(), num_labels=1))


# --------------------------------------------------------------------------- learning, through the Trainer


def word_stream(path: Path, vocab: dict[str, int] | None = None, limit: int | None = None):
    lines = path.read_text(encoding="utf-8").splitlines()[:limit]
    words = [w for line in lines for w in line.split() + ["</s>"]]
    if vocab is None:
        counts = Counter(words)
        vocab = {"<unk>": 0}
        for word, count in counts.most_common():
            if count >= 2:
                vocab[word] = len(vocab)
    return np.array([vocab.get(w, 0) for w in words], dtype=np.int64), vocab


def test_learns_real_text_with_the_trainer(tmp_path):
    """A tiny GPT on 1,650 Wikipedia sentences beats the unigram entropy of the text by a wide margin."""
    from lmlab.data.stream import LMBlocks
    from lmlab.recipes.gpt import CausalLMObjective
    from lmlab.train.trainer import TrainConfig, Trainer

    torch.manual_seed(0)
    train_ids, vocab = word_stream(FIXTURES / "train.txt")
    test_ids, _ = word_stream(FIXTURES / "test.txt", vocab)
    counts = np.bincount(train_ids, minlength=len(vocab)) + 1.0
    unigram_nll = float(-(np.log(counts / counts.sum())[test_ids]).mean())  # add-one unigram on test
    model = GPTLanguageModel(GPTConfig(vocab_size=len(vocab), max_length=32, d_model=64, n_layers=2,
                                       n_heads=4, dropout=0.0, attn_dropout=0.0))
    source = LMBlocks(train_ids, seq_len=32, batch_size=16, seed=0)
    config = TrainConfig(max_steps=250, lr=3e-3, warmup_steps=20, schedule="cosine", weight_decay=0.0,
                         progress="off", tensorboard=False, plot=False, mfu=False, threads=1, device="cpu")
    result = Trainer(model, CausalLMObjective(), source, config, tmp_path / "run").fit()
    model.eval()
    blocks = torch.from_numpy(test_ids[: (len(test_ids) - 1) // 32 * 32 + 1])
    inputs, targets = blocks[:-1].view(-1, 32), blocks[1:].view(-1, 32)
    with torch.no_grad():
        test_nll = F.cross_entropy(model(inputs).reshape(-1, len(vocab)), targets.reshape(-1)).item()
    print(f"test nll {test_nll:.3f} vs unigram {unigram_nll:.3f}, train loss {result.loss:.3f}")
    assert result.step == 250
    assert test_nll < unigram_nll - 0.3, (test_nll, unigram_nll)
    assert test_nll < 4.85  # measured 4.60 (perplexity ≈ 99) with this seed


def test_sliding_window_scoring():
    """stride 1: token t is predicted from exactly the min(t, window - 1) tokens before it."""
    torch.manual_seed(0)
    model = GPTLanguageModel(tiny(max_length=8, bos_token_id=1, init_std=0.3)).eval()
    ids = torch.randint(0, 50, (20,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        brute = []
        for t in range(1, 20):
            context = ids[max(0, t - 7):t + 1][None]
            brute.append(torch.log_softmax(model(context)[0, -2], -1)[ids[t]])
    torch.testing.assert_close(model.sliding_window_log_probs(ids, window=8, stride=1), torch.stack(brute),
                               atol=1e-5, rtol=0)
    for stride in (2, 5, 8):  # every token scored exactly once, whatever the stride
        assert model.sliding_window_log_probs(ids, window=8, stride=stride).shape == (19,)
    with pytest.raises(UsageError):
        model.sliding_window_log_probs(ids, window=9)
    # sentences: log P(w_i | <s> w_<i), long ones through the windows
    scores = model.score_sentences([[5, 6, 7], ids.tolist()])
    with torch.no_grad():
        direct = torch.log_softmax(model(torch.tensor([[1, 5, 6]]))[0], -1)
    torch.testing.assert_close(scores[0], direct.gather(1, torch.tensor([[5], [6], [7]]))[:, 0], atol=1e-5, rtol=0)
    assert scores[1].shape == (20,)


def test_eval_ppl_scores_a_subword_gpt_on_every_scale(tmp_path, cli):
    """`lmlab eval ppl` on a GPT folder: per token, per word and bits per byte from one sum of
    log-probabilities, each sentence followed by </s>, equal to scoring it by hand."""
    from lmlab.data import sources
    from lmlab.data.tokenizers import train_tokenizer

    texts = [d.text for d in sources.load("wiki-vital-small").split().train[:60]]
    tokenizer = train_tokenizer("bytebpe", texts, vocab_size=400)
    eos = tokenizer.token_to_id("</s>")
    torch.manual_seed(0)
    model = GPTLanguageModel(tiny(vocab_size=tokenizer.vocab_size, max_length=128,
                                  bos_token_id=tokenizer.token_to_id("<s>"), eos_token_id=eos)).eval()
    model.save_pretrained(tmp_path / "gpt", extra_files=tokenizer.files())
    sentences = [["the", "river", "flows", "into", "the", "sea", "."], ["a", "city", "in", "france", "."]]
    (tmp_path / "text.txt").write_text("\n".join(" ".join(s) for s in sentences) + "\n")
    proc = cli("eval", "ppl", str(tmp_path / "gpt"), str(tmp_path / "text.txt"), "--pretokenized", "--json")
    assert proc.returncode == 0, proc.stderr
    reported = json.loads(proc.stdout)
    ids = [tokenizer.encode(" ".join(s)) + [eos] for s in sentences]
    with torch.no_grad():
        nats = -sum(float(lp.sum()) for lp in model.score_sentences(ids))
    tokens = sum(len(i) for i in ids)
    words = sum(len(s) + 1 for s in sentences)
    n_bytes = sum(len(" ".join(s).encode()) + 1 for s in sentences)
    assert reported["family"] == "gpt" and reported["tokens"] == tokens
    # float32 logits in another process (other thread count): equal to ~1e-7, not bit for bit
    assert reported["ppl"] == pytest.approx(math.exp(nats / tokens), rel=1e-5)
    assert reported["word_ppl"] == pytest.approx(math.exp(nats / words), rel=1e-5)
    assert reported["bits_per_byte"] == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)
    refused = cli("eval", "ppl", str(tmp_path / "nothing"), str(tmp_path / "text.txt"))
    assert refused.returncode != 0 and "not found" in refused.stderr and "Traceback" not in refused.stderr
