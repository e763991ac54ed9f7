"""Generation: KV cache vs recomputation, left padding, stop tokens, the logit filters, beam search."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.errors import UsageError
from lmlab.models.gpt import GPTConfig, GPTLanguageModel
from lmlab.nn.attention import KVCache
from lmlab.tasks.generation import (
    GenerationConfig,
    apply_repetition_penalty,
    beam_search,
    generate,
    top_k_filter,
    top_p_filter,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=40, max_length=48, d_model=32, n_layers=2, n_heads=4, dropout=0.0,
                       attn_dropout=0.0, init_std=0.3)  # a large init gives varied, peaked outputs
    return GPTLanguageModel(config).eval()


def test_cached_greedy_equals_full_recomputation_token_by_token(model):
    prompt = torch.randint(0, 40, (3, 5), generator=torch.Generator().manual_seed(1))
    cached = generate(model, prompt, config=GenerationConfig(max_new_tokens=20))
    full = generate(model, prompt, config=GenerationConfig(max_new_tokens=20, use_cache=False))
    assert torch.equal(cached, full)
    assert len(set(cached[0, 5:].tolist())) > 2  # not a degenerate repeat of one token
    # and the logits themselves agree at every step
    cache = KVCache(2, 25)
    ids = prompt
    step = model.next_token_logits(prompt, None, cache)
    for _ in range(5):
        full_logits = model(ids)[:, -1]
        torch.testing.assert_close(step, full_logits, atol=1e-5, rtol=0)
        next_ids = full_logits.argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_ids], dim=1)
        step = model.next_token_logits(next_ids, None, cache)


def test_sampling_is_seeded_and_cache_independent(model):
    prompt = torch.tensor([[3, 4, 5]])
    settings = {"max_new_tokens": 15, "do_sample": True, "temperature": 0.8, "top_k": 10, "top_p": 0.9, "seed": 7}
    a = generate(model, prompt, config=GenerationConfig(**settings))
    b = generate(model, prompt, config=GenerationConfig(**settings))
    c = generate(model, prompt, config=GenerationConfig(**settings, use_cache=False))
    d = generate(model, prompt, config=GenerationConfig(**{**settings, "seed": 8}))
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, d)


def test_batched_left_padded_prompts_match_one_by_one(model):
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    config = GenerationConfig(max_new_tokens=12)
    batched = generate(model, ids, attention_mask=mask, config=config)
    for row, prompt in enumerate(prompts):
        alone = generate(model, torch.tensor([prompt]), config=config)
        assert batched[row, width:].tolist() == alone[0, len(prompt):].tolist()
    with pytest.raises(UsageError, match="left-padded"):
        generate(model, ids, attention_mask=mask.flip(1), config=config)


def test_stop_tokens_end_a_row_and_pad_after(model):
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    free = generate(model, prompt, config=GenerationConfig(max_new_tokens=10))
    stop = free[0, 5].item()  # the third generated token of row 0
    out = generate(model, prompt, config=GenerationConfig(max_new_tokens=10, stop_token_ids=[stop], pad_token_id=39))
    first = out[0, 3:].tolist().index(stop)
    assert out[0, 3 + first + 1:].eq(39).all()
    assert out[0, :3 + first + 1].tolist() == free[0, :3 + first + 1].tolist()
    streamed = []
    generate(model, prompt, config=GenerationConfig(max_new_tokens=4), streamer=streamed.append)
    assert len(streamed) == 4 and streamed[0].shape == (2,)


def test_streamed_tokens_are_the_returned_tokens(model):
    prompt = torch.tensor([[1, 2, 3]])
    streamed = []
    out = generate(model, prompt, config=GenerationConfig(max_new_tokens=6), streamer=streamed.append)
    assert torch.stack(streamed, dim=1).tolist() == out[:, 3:].tolist()


def test_top_k_top_p_and_repetition_penalty_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    assert torch.isfinite(top_k_filter(logits, 2)).tolist() == [[True, True, False, False, False]]
    # nucleus p = 0.8: 0.5 + 0.2 = 0.7 < 0.8, so 0.15 is needed too
    assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [[True, True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.01)).sum() == 1  # always keeps the top token
    raw = torch.tensor([[2.0, -2.0, 1.0]])
    penalised = apply_repetition_penalty(raw, torch.tensor([[0, 1, 1]]), 2.0)
    assert penalised.tolist() == [[1.0, -4.0, 1.0]]


def test_low_temperature_sampling_is_greedy(model):
    prompt = torch.tensor([[7, 8]])
    greedy = generate(model, prompt, config=GenerationConfig(max_new_tokens=8))
    cold = generate(model, prompt, config=GenerationConfig(max_new_tokens=8, do_sample=True,
                                                           temperature=1e-4, seed=0))
    assert torch.equal(greedy, cold)


class TableDecoder:
    """A first-order Markov "model" with a fixed next-token table, for hand-checked beam search.

    From state 0 (the prompt token), greedy takes token 1 (p = .5) but then faces a flat
    distribution; token 2 (p = .4) leads to a sure continuation. Tokens: 0 start, 1 A, 2 B,
    3 C, 4 D, 5 stop.
    """

    max_positions = 16
    training = False

    def __init__(self):
        p = torch.full((6, 6), 1e-9)
        p[0, 1], p[0, 2], p[0, 5] = 0.5, 0.4, 0.1
        p[1, 3], p[1, 4], p[1, 5] = 0.34, 0.33, 0.33
        p[2, 3] = 1.0
        p[3, 5] = 1.0
        p[4, 5] = 1.0
        self.log_p = torch.log(p / p.sum(-1, keepdim=True))

    def new_cache(self, batch_size, max_length):
        return KVCache(0, max_length)

    def next_token_logits(self, input_ids, attention_mask, cache):
        return self.log_p[input_ids[:, -1]]


def test_beam_search_finds_what_greedy_misses():
    decoder = TableDecoder()
    start = torch.tensor([[0]])
    greedy = generate(decoder, start, config=GenerationConfig(max_new_tokens=3, stop_token_ids=[5]))
    assert greedy[0].tolist() == [0, 1, 3, 5]  # 0.5 · 0.34 · 1 = 0.17
    beam = generate(decoder, start, config=GenerationConfig(max_new_tokens=3, num_beams=2, stop_token_ids=[5]))
    assert beam[0].tolist() == [0, 2, 3, 5]    # 0.4 · 1 · 1 = 0.4
    # length penalty: "stop now" (0.1, one token) vs [2, 3, 5] (0.4, three tokens)
    short = beam_search(decoder, start, config=GenerationConfig(max_new_tokens=3, num_beams=3, stop_token_ids=[5],
                                                          length_penalty=0.0))
    assert short[0].tolist() == [0, 2, 3, 5]   # α = 0: raw log-prob, log .4 > log .1
    long_bias = 3.0  # α = 3: log(.1)/1 = -2.30 < log(.4)/27 = -0.034
    assert math.log(0.4) / 3 ** long_bias > math.log(0.1)
    favoured = beam_search(decoder, start, config=GenerationConfig(max_new_tokens=3, num_beams=3, stop_token_ids=[5],
                                                             length_penalty=long_bias))
    assert favoured[0].tolist() == [0, 2, 3, 5]


def test_beam_search_with_one_beam_is_greedy_and_cache_independent(model):
    prompt = torch.randint(0, 40, (2, 4), generator=torch.Generator().manual_seed(3))
    greedy = generate(model, prompt, config=GenerationConfig(max_new_tokens=10))
    one = beam_search(model, prompt, config=GenerationConfig(max_new_tokens=10, num_beams=1))
    assert torch.equal(greedy, one)
    cached = generate(model, prompt, config=GenerationConfig(max_new_tokens=10, num_beams=4, stop_token_ids=[3]))
    full = generate(model, prompt, config=GenerationConfig(max_new_tokens=10, num_beams=4, stop_token_ids=[3],
                                                           use_cache=False))
    assert torch.equal(cached, full)


def test_bad_settings_are_refused(model):
    prompt = torch.tensor([[1, 2]])
    for bad in ({"temperature": 0.0}, {"top_p": 1.5}, {"top_k": -1}, {"num_beams": 0},
                {"num_beams": 2, "do_sample": True}, {"max_new_tokens": 100}):
        with pytest.raises(UsageError):
            generate(model, prompt, config=GenerationConfig(**bad))


def test_generate_command_streams_a_continuation(tmp_path, model):
    """``lmlab generate`` on a saved word-level GPT folder (tokenizer files saved beside the weights)."""
    import typer
    from typer.testing import CliRunner

    from lmlab.cli import generate as generate_cli
    from lmlab.data.tokenizers import WordTokenizer

    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the command is called by name as on the real CLI
    generate_cli.register(app)

    words = [chr(97 + i) for i in range(26)] + ["z" + chr(97 + i) for i in range(10)]  # + 4 specials = 40 ids
    tokenizer = WordTokenizer(lowercase=True).train_from_tokens([words])
    assert tokenizer.vocab_size == 40
    saved = GPTLanguageModel(GPTConfig(**{**model.config.__dict__, "bos_token_id": 1, "eos_token_id": 2}))
    saved.load_state_dict(model.state_dict())
    saved.save_pretrained(tmp_path / "m")
    tokenizer.save(tmp_path / "m")
    runner = CliRunner()
    result = runner.invoke(app, ["generate", str(tmp_path / "m"), "c d", "--max-new-tokens", "6", "--ignore-eos"])
    assert result.exit_code == 0, result.output
    expected = generate(saved.eval(), torch.tensor([[1, *tokenizer.encode("c d")]]),
                        config=GenerationConfig(max_new_tokens=6))
    assert tokenizer.unk_id not in expected[0, :3].tolist()  # the prompt is known words
    assert result.output.strip() == tokenizer.decode(expected[0, 1:].tolist(), skip_specials=True)
    ids = runner.invoke(app, ["generate", str(tmp_path / "m"), "5 6", "--ids", "-n", "3", "--beam", "2"])
    assert ids.exit_code == 0 and len(ids.output.split()) == 5
    sampled = runner.invoke(app, ["generate", str(tmp_path / "m"), "c", "--top-p", "0.9", "--seed", "1", "-n", "4"])
    assert sampled.exit_code == 0 and sampled.output.startswith("c")
