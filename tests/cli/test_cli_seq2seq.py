"""``lmlab finetune`` / ``lmlab predict`` / ``lmlab eval seq2seq`` for every encoder-decoder folder (issue 16).

Tiny T5, BART (MASS folders are BART folders) and Transformer models are built here, saved as the
``lmlab train`` recipes save them, fine-tuned through the CLI on a user's pairs file (JSONL, TSV) or
a built-in task (g2p, wiki-desc), reloaded, run with ``lmlab predict`` and scored again with
``lmlab eval seq2seq``, which must print the numbers ``lmlab finetune`` wrote.
"""

from __future__ import annotations

import json

import pytest
import torch

import lmlab

pytestmark = pytest.mark.usefixtures("one_thread")

METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL")


@pytest.fixture(scope="module")
def sentences():
    """Real text: wiki-vital-small lead sentences cut to their first 5 words."""
    from lmlab.data import sources
    from lmlab.data.clean import split_sentences

    docs = sources.load("wiki-vital-small").split().train[:300]
    return [" ".join(split_sentences(d.text)[0].split()[:5]) for d in docs if d.text]


def _ids(tokenizer, *tokens):
    return [tokenizer.token_to_id(t) for t in tokens]


def _t5_folder(path, texts):
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.models.t5 import T5Config, T5ForConditionalGeneration

    tok = train_tokenizer("unigram", texts, vocab_size=300)
    pad, eos = _ids(tok, "<pad>", "</s>")
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=tok.vocab_size + 4, d_model=32, d_kv=16, d_ff=64,
                                                n_heads=2, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0,
                                                pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=pad,
                                                max_length=64))
    return model.save_pretrained(path, extra_files=tok.files())


def _transformer(src_vocab, tgt_vocab, pad, bos, eos, share):
    from lmlab.models.transformer import Transformer, TransformerConfig

    torch.manual_seed(0)
    return Transformer(TransformerConfig(src_vocab_size=src_vocab, tgt_vocab_size=tgt_vocab, share_embeddings=share,
                                         d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=64,
                                         dropout=0.0, max_length=64, pad_token_id=pad, bos_token_id=bos,
                                         eos_token_id=eos))


def _scores_agree(cli, out):
    """``lmlab eval seq2seq OUT`` reproduces every metric ``lmlab finetune`` wrote to OUT/scores.json."""
    written = json.loads((out / "scores.json").read_text())
    run = cli("eval", "seq2seq", str(out), "--json")
    assert run.returncode == 0, run.stderr
    again = json.loads(run.stdout.strip().splitlines()[-1])
    assert again["task"] == written["task"] and again["n_eval"] == written["n_eval"]
    for name in METRICS + (("per", "wer") if written["task"] == "g2p" else ()):
        assert again[name] == written[name], name
    return written


def test_t5_on_a_jsonl_pairs_file_finetune_predict_eval(cli, tmp_path, sentences):
    """A copy task on real sentences: 60 steps teach the tiny T5 to start copying words."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"source": s, "target": s}) + "\n" for s in sentences), encoding="utf-8")
    folder = _t5_folder(tmp_path / "t5", sentences)
    out = tmp_path / "ft"
    run = cli("finetune", str(folder), str(pairs), "--steps", "60", "--batch-size", "16", "--lr", "3e-3",
              "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "bleu" in run.stdout and "chrf" in run.stdout
    scores = _scores_agree(cli, out)
    assert scores["task"] == "pairs" and scores["n_train"] > 200
    # measured (1 thread): ROUGE-1 14.6, chrF 1.6, BLEU 0.4; the untrained model emits no source word
    assert scores["rouge1"] > 5, scores
    model = lmlab.load(out / "model")
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert json.loads((out / "model" / "config.json").read_text())["finetuned"]["task"] == "pairs"
    run = cli("predict", str(out), sentences[0])
    assert run.returncode == 0, run.stderr
    line = json.loads(run.stdout.strip().splitlines()[-1])
    assert line["text"] == sentences[0] and isinstance(line["generated_text"], str)
    # the library pipeline gives the same text
    pipe = lmlab.pipeline("text2text-generation", out / "model")
    assert pipe(sentences[0])["generated_text"] == line["generated_text"]


def test_bart_on_a_tsv_pairs_file(cli, tmp_path, sentences, tiny_bart_folder):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{s.lower()}\n" for s in sentences), encoding="utf-8")
    folder = tiny_bart_folder(tmp_path / "bart", sentences + [s.lower() for s in sentences])
    out = tmp_path / "ft"
    run = cli("finetune", str(folder), str(pairs), "--steps", "4", "--batch-size", "8", "--threads", "1",
              "--out", str(out))
    assert run.returncode == 0, run.stderr
    scores = _scores_agree(cli, out)
    assert scores["task"] == "pairs" and scores["train_loss"] > 0
    assert type(lmlab.load(out / "model")).__name__ == "BartForConditionalGeneration"
    assert (out / "model" / "tokenizer.json").is_file()


def test_translation_recipe_transformer_on_g2p_then_predict(cli, tmp_path):
    """A Transformer folder of the g2p translation recipe (letter and phoneme vocabularies, no tokenizer)."""
    from lmlab.recipes.seq2seq import BOS, EOS, PAD, PairVocab, g2p_entries

    train, _, _ = g2p_entries()
    vocab = PairVocab.for_g2p(train[:5000])
    model = _transformer(len(vocab.source), len(vocab.target), PAD, BOS, EOS, share=False)
    folder = model.save_pretrained(tmp_path / "tr", extra_files=vocab.files(), metadata={"data": {"task": "g2p"}})
    out = tmp_path / "ft"
    run = cli("finetune", str(folder), "g2p", "--steps", "3", "--batch-size", "8", "--max-train", "64",
              "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert scores["task"] == "g2p" and {"per", "wer"} <= set(scores) and scores["n_train"] == 64
    assert (out / "model" / "source_vocab.txt").is_file()
    run = cli("predict", str(out / "model"), "language", "--max-new-tokens", "5")
    assert run.returncode == 0, run.stderr
    produced = json.loads(run.stdout.strip().splitlines()[-1])["generated_text"]
    assert all(p in vocab.target for p in produced.split())  # phonemes, at most 5 of them
    assert len(produced.split()) <= 5


def test_transformer_with_a_tokenizer_on_wiki_desc(cli, tmp_path, sentences):
    """A Transformer folder with tokenizer files (span-corruption pretraining's layout) on a built-in task."""
    from lmlab.data.tokenizers import train_tokenizer

    tok = train_tokenizer("bytebpe", sentences, vocab_size=300)
    pad, bos, eos = _ids(tok, "<pad>", "<s>", "</s>")
    model = _transformer(tok.vocab_size, tok.vocab_size, pad, bos, eos, share=True)
    folder = model.save_pretrained(tmp_path / "tr", extra_files=tok.files())
    out = tmp_path / "ft"
    run = cli("finetune", str(folder), "wiki-desc", "--steps", "3", "--batch-size", "8", "--max-train", "32",
              "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert scores["task"] == "wiki-desc" and scores["n_train"] == 32 and scores["eval_split"] == "test"
    assert type(lmlab.load(out / "model")).__name__ == "Transformer"


def test_a_classification_file_still_goes_to_classification(tmp_path, tiny_bart_folder):
    from lmlab.tasks.seq2seq import is_pairs_for_encoder_decoder

    folder = tiny_bart_folder(tmp_path / "bart", ["a b c", "d e f"] * 20)
    (tmp_path / "cls.tsv").write_text("text\tlabel\ngood film\tpos\n", encoding="utf-8")
    (tmp_path / "cls.jsonl").write_text(json.dumps({"text": "good", "label": "pos"}) + "\n", encoding="utf-8")
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"source": "a", "target": "b"}) + "\n", encoding="utf-8")
    assert not is_pairs_for_encoder_decoder(folder, str(tmp_path / "cls.tsv"))
    assert not is_pairs_for_encoder_decoder(folder, str(tmp_path / "cls.jsonl"))
    assert is_pairs_for_encoder_decoder(folder, str(tmp_path / "pairs.jsonl"))


def test_t5_text_to_text_classification_on_rotten_tomatoes(cli, tmp_path):
    """``lmlab finetune T5_DIR rotten-tomatoes`` is text-to-text for a T5 folder: the model learns to write
    "rotten" / "fresh"; the pipeline's label and score come from the two label words' sequence probabilities."""
    from lmlab.data import sources
    from lmlab.tasks.seq2seq import label_log_probs, load_model

    texts = [d.text for d in sources.load("rotten-tomatoes").split().train[:400]] + ["rotten", "fresh"]
    folder = _t5_folder(tmp_path / "t5", texts)
    out = tmp_path / "ft"
    run = cli("finetune", str(folder), "rotten-tomatoes", "--steps", "30", "--batch-size", "16", "--lr", "3e-3",
              "--max-train", "480", "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "text-to-text" in run.stdout
    scores = json.loads((out / "scores.json").read_text())
    assert scores["labels"] == ["rotten", "fresh"] and scores["n_test"] > 1000
    assert 0.0 <= scores["accuracy"] <= 1.0 and scores["majority_baseline"] >= 0.5
    pipe = lmlab.pipeline("text-classification", out / "model")
    text = "a gorgeous, witty, seductive movie."
    best = pipe(text)
    ranked = pipe(text, top_k=None)
    assert best["label"] in ("rotten", "fresh") and ranked[0] == best
    assert sum(r["score"] for r in ranked) == pytest.approx(1.0)
    # hand check: the score is P(label words </s> | text) normalised over the two labels
    model, codec = load_model(out / "model")
    logp = label_log_probs(model, codec, [text], ["rotten", "fresh"], 64)[0]
    assert best["score"] == pytest.approx(float(torch.softmax(logp, 0).max()), abs=1e-6)
    with torch.no_grad():  # and log P of one label word is the teacher-forced sum over its tokens and </s>
        ids = codec.target_ids(["fresh"], 64)[0] + [model.config.eos_token_id]
        src = torch.tensor(codec.source_ids([text], 64))
        dec = torch.tensor([[model.config.decoder_start_token_id, *ids[:-1]]])
        lp = torch.log_softmax(model(src, dec), -1)[0]
        assert float(sum(lp[t, i] for t, i in enumerate(ids))) == pytest.approx(float(logp[1]), abs=1e-4)
    run = cli("predict", str(out), text)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["label"] == best["label"]
    # lmlab eval classify reproduces the test numbers lmlab finetune printed
    run = cli("eval", "classify", str(out), "--json")
    assert run.returncode == 0, run.stderr
    again = json.loads(run.stdout.strip().splitlines()[-1])
    assert again["n"] == scores["n_test"] and again["split"] == "test"
    for name in ("accuracy", "macro_f1", "majority_baseline"):
        assert again[name] == scores[name], name


# --------------------------------------------------------------------------- decoding options (issue 16)


def _g2p_transformer_folder(path):
    from lmlab.recipes.seq2seq import BOS, EOS, PAD, PairVocab, g2p_entries

    train, _, _ = g2p_entries()
    vocab = PairVocab.for_g2p(train[:5000])
    model = _transformer(len(vocab.source), len(vocab.target), PAD, BOS, EOS, share=False)
    return model.save_pretrained(path, extra_files=vocab.files(), metadata={"data": {"task": "g2p"}}), vocab


def test_decoding_options_are_recorded_and_reused_by_predict_and_eval(cli, tmp_path):
    """``--num-beams 3 --max-target-length 8 ...`` go into the recorded spec; ``lmlab predict`` and ``lmlab eval
    seq2seq`` decode with them unless told otherwise (outputs are phonemes: one token each)."""
    from lmlab.tasks.seq2seq import evaluate_seq2seq

    folder, vocab = _g2p_transformer_folder(tmp_path / "tr")
    out = tmp_path / "ft"
    run = cli("finetune", str(folder), "g2p", "--steps", "3", "--batch-size", "8", "--max-train", "64",
              "--threads", "1", "--num-beams", "3", "--length-penalty", "0.6", "--max-source-length", "16",
              "--max-target-length", "8", "--out", str(out))
    assert run.returncode == 0, run.stderr
    spec = json.loads((out / "model" / "config.json").read_text())["finetuned"]["spec"]
    assert (spec["num_beams"], spec["length_penalty"], spec["max_source_len"], spec["max_target_len"]) == (3, 0.6, 16, 8)
    _scores_agree(cli, out)  # eval seq2seq with no options: the recorded beams, penalty and lengths
    pipe = lmlab.pipeline("text2text-generation", out / "model")
    assert pipe.defaults == {"max_new_tokens": 8, "num_beams": 3, "length_penalty": 0.6, "max_source_len": 16}
    word = "internationalisation"
    run = cli("predict", str(out), word)
    assert run.returncode == 0, run.stderr
    produced = json.loads(run.stdout.strip().splitlines()[-1])["generated_text"]
    assert produced == pipe(word)["generated_text"]
    assert len(produced.split()) <= 8 and all(p in vocab.target for p in produced.split())
    # an option on predict wins over the recorded one
    run = cli("predict", str(out), word, "--max-new-tokens", "2", "--num-beams", "1")
    assert run.returncode == 0, run.stderr
    produced = json.loads(run.stdout.strip().splitlines()[-1])["generated_text"]
    assert produced == pipe(word, max_new_tokens=2, num_beams=1)["generated_text"]
    assert len(produced.split()) <= 2
    # and on eval seq2seq (the library call behind it)
    short = evaluate_seq2seq(out / "model", max_eval=5, max_target_len=3)
    assert all(len(e["output"].split()) <= 3 for e in short["examples"])


def test_an_old_folder_without_the_options_decodes_as_before(tmp_path):
    """A fine-tuned folder of an older lmlab records no decoding keys: the old defaults (greedy, 64 tokens)."""
    from lmlab.tasks.seq2seq import saved_spec

    folder, _ = _g2p_transformer_folder(tmp_path / "tr")
    config = json.loads((folder / "config.json").read_text())
    config["finetuned"] = {"task": "g2p", "data": "g2p", "spec": {"steps": 3}}
    (folder / "config.json").write_text(json.dumps(config))
    spec = saved_spec(folder)
    assert (spec.num_beams, spec.length_penalty, spec.max_source_len, spec.max_target_len) == (1, 1.0, 64, 64)
    pipe = lmlab.pipeline("text2text-generation", folder)
    assert pipe.defaults["num_beams"] == 1 and pipe.defaults["max_new_tokens"] == 64


@pytest.mark.parametrize("command", [
    ("finetune", "{model}", "{pairs}", "--num-beams", "0"),
    ("finetune", "{model}", "{pairs}", "--max-target-length", "1"),
    ("finetune", "{model}", "{pairs}", "--max-source-length", "65"),  # the model's max_length is 64
    ("finetune", "{model}", "{pairs}", "--length-penalty", "nan"),
    ("finetune", "{model}", "{pairs}", "--length-penalty", "inf"),
    ("predict", "{model}", "a text", "--num-beams", "0"),
    ("predict", "{model}", "a text", "--max-source-length", "1000"),
    ("eval", "seq2seq", "{model}", "{pairs}", "--max-target-length", "1"),
    ("eval", "seq2seq", "{model}", "{pairs}", "--length-penalty", "nan"),
], ids=lambda c: " ".join(c[:1] + c[-2:]))
def test_bad_decoding_options_are_one_line_errors(cli, tmp_path, command):
    folder = _t5_folder(tmp_path / "t5", ["a b c", "d e f"] * 20)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"source": "a b", "target": "c"}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [a.format(model=folder, pairs=pairs) for a in command]
    run = cli(*args, *(["--out", str(out)] if command[0] == "finetune" else []))
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert command[-2] in run.stderr, run.stderr
    assert not out.exists()
