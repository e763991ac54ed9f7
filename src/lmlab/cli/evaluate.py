"""``lmlab eval``: score a saved model on a split of its corpus or on a text file.

    lmlab eval ppl runs/lstm/model test           # the test split of the corpus it was trained on
    lmlab eval ppl runs/nnlm/model notes.txt      # any text file (sentence-split, tokenized, lowercased)
    lmlab eval ppl model.arpa test --corpus wiki-vital
    lmlab eval seq2seq runs/ft-g2p/model          # a fine-tuned encoder-decoder, decoded as lmlab finetune did

Word-level models report exact per-word perplexity: every word and ``</s>`` predicted,
``<s>`` context only, out-of-vocabulary words scored as ``<unk>``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from .. import registry
from ..errors import UsageError
from .common import console, status, table
from .ngram import warn_oov

app = typer.Typer(help="Evaluate saved models: perplexity on a split or a file; a fine-tuned classifier on its data.", no_args_is_help=True)

SPLITS = ("train", "valid", "test")


def _sentences(target: str, corpus: str | None, pretokenized: bool) -> tuple[list[list[str]], str]:
    from ..data import sources
    from ..data.corpus import read_user_corpus, word_sentences

    if target in SPLITS:
        if not corpus:
            raise UsageError(f"{target!r} is a split: the model does not record its corpus, pass --corpus NAME")
        return word_sentences(sources.load(corpus).split()[target]), f"{corpus}/{target}"
    path = Path(target)
    if not path.exists():
        raise UsageError(f"{target!r} is neither a split ({', '.join(SPLITS)}) nor an existing file")
    if pretokenized:
        from ..data.corpus import decode_utf8

        lines = decode_utf8(path.read_bytes(), str(path)).splitlines()
        return [line.split() for line in lines if line.strip()], str(path)
    return word_sentences(read_user_corpus(path).documents), str(path)


def _saved_tokenizer(folder: Path):
    """The tokenizer saved beside the weights, or None (a word LM of lmlab 0.2 keeps its vocabulary in config.json)."""
    from ..data.tokenizers import load_tokenizer

    if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder)
    return None


@app.command("ppl")
def ppl(
    model_dir: Path = typer.Argument(..., help="A saved model folder (lmlab train's export), or an ARPA / binary (.lmbin) n-gram file."),
    target: str = typer.Argument(..., help="train | valid | test (of the model's corpus), or a text file."),
    corpus: str | None = typer.Option(None, help="Corpus for a split (default: the one the model was trained on)."),
    pretokenized: bool = typer.Option(False, help="FILE has one tokenized sentence per line (as KenLM's query)."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """Exact perplexity of any LM family (per word; </s> counted, <s> not; subword models also per token and bits per byte)."""
    from ..eval.perplexity import PerplexityResult, word_perplexity

    extra: dict[str, float] = {}  # the forward / backward perplexities of a bilm-tf ELMo
    if model_dir.is_file() and model_dir.name.endswith((".arpa", ".arpa.gz", ".lmbin")):
        from ..ngram import load_model

        with status(f"reading {model_dir}"):
            model = load_model(model_dir)
        sentences, where = _sentences(target, corpus, pretokenized)
        ev = model.evaluate(sentences)
        result = PerplexityResult(nats=-ev.log10_prob * math.log(10), tokens=ev.tokens, oov=ev.oovs,
                                  sentences=ev.sentences)
        warn_oov(model.vocab.index, sentences)
        family = "ngram (binary)" if model_dir.name.endswith(".lmbin") else "ngram (ARPA)"
    elif (model_dir / "options.json").is_file():  # bilm-tf / AllenNLP ELMo: options.json + weights.hdf5 + vocab.txt
        from ..recipes.elmo import bilm_tf_perplexities

        sentences, where = _sentences(target, corpus, pretokenized)
        with status(f"scoring {len(sentences):,} sentences"):
            both = bilm_tf_perplexities(model_dir, sentences)
        result, family = both["mean"], "elmo (bilm-tf)"
        extra = {"forward_perplexity": both["forward"].perplexity, "backward_perplexity": both["backward"].perplexity}
    else:
        from ..pretrained import load, read_model_config, read_word_vocabulary, split_config

        family, _, metadata = split_config(read_model_config(model_dir), f"{model_dir}/config.json")
        registry.get(family).require("score", "lmlab eval ppl")
        with status(f"loading {model_dir}"):
            model = load(model_dir)
        corpus = corpus or (metadata.get("data") or {}).get("corpus")
        sentences, where = _sentences(target, corpus, pretokenized)
        tokenizer = _saved_tokenizer(model_dir)
        with status(f"scoring {len(sentences):,} sentences"):
            if tokenizer is None or tokenizer.kind == "word":  # a closed word vocabulary: exact per-word scores
                vocabulary = read_word_vocabulary(model_dir, model.config.vocab_size)
                result = word_perplexity(model, sentences, vocabulary)
                warn_oov(set(vocabulary), sentences, (metadata.get("data") or {}).get("train_oov_rate"))
            else:
                from ..eval.perplexity import subword_perplexity

                result = subword_perplexity(model, tokenizer, sentences, model.config.eos_token_id)
    numbers = result.as_dict()
    numbers.update(extra)
    if as_json:
        print(json.dumps({"model": str(model_dir), "family": family, "text": where, **numbers}))
        return
    console.print(table(f"{model_dir} ({family}) on {where}",
                        ["metric", "value"], [[k, v] for k, v in numbers.items()]))


@app.command("classify")
def classify(
    model_dir: Path = typer.Argument(..., help="A fine-tuned classifier folder (lmlab finetune's OUT/model, or OUT)."),
    split: str = typer.Option("test", help="train | valid | test of the data it was fine-tuned on."),
    batch_size: int = typer.Option(128, help="Examples per batch."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """Accuracy, macro-F1 and the majority baseline of a fine-tuned classifier on its recorded data's split."""
    from ..tasks.classification import evaluate_folder
    from ..tasks.predict import model_folder
    from ..tasks.seq2seq import evaluate_text_to_text, is_text_to_text_classifier

    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    folder = model_folder(model_dir)
    with status(f"scoring {folder} on its {split} split"):
        if is_text_to_text_classifier(folder):  # in batches of 32 as its fine-tuning scored them (padding
            scores = evaluate_text_to_text(folder, split)  # changes the float sums: a near-tie could flip)
        else:
            scores = evaluate_folder(folder, split, batch_size)
    recorded = scores.pop("recorded")
    if as_json:
        print(json.dumps({"model": str(folder), **scores}))
        return
    rows = [[k, v] for k, v in scores.items() if k != "split"]
    if split == "test" and "accuracy" in recorded:
        rows.append(["accuracy printed by lmlab finetune", recorded["accuracy"]])
    console.print(table(f"{folder} on its {split} split", ["metric", "value"], rows))


@app.command("seq2seq")
def seq2seq(
    model_dir: Path = typer.Argument(..., help="A fine-tuned encoder-decoder folder (lmlab finetune's OUT/model, or OUT)."),
    data: str = typer.Argument("", help="g2p | kjv-web | wiki-desc | a .jsonl/.tsv pairs file (default: the one it "
                                        "was fine-tuned on)"),
    split: str = typer.Option("", help="valid | test (default: the fine-tuning's)"),
    max_eval: int = typer.Option(-1, help="pairs decoded and scored (-1: the fine-tuning's)"),
    num_beams: int = typer.Option(0, help="beam width (0: the fine-tuning's)"),
    length_penalty: float = typer.Option(None, help="beam search's length penalty (default: the fine-tuning's)"),
    max_source_length: int = typer.Option(0, help="source tokens kept (0: the fine-tuning's)"),
    max_target_length: int = typer.Option(0, help="output tokens at most (0: the fine-tuning's)"),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """BLEU, chrF, ROUGE (and PER / WER for g2p) of a fine-tuned encoder-decoder, decoded as lmlab finetune did."""
    from ..tasks.predict import model_folder
    from ..tasks.seq2seq import check_decoding_options, evaluate_seq2seq, folder_max_length

    if split and split not in ("valid", "test"):
        raise UsageError(f"--split must be valid or test, got {split!r}")
    for option, value in (("--num-beams", num_beams), ("--max-source-length", max_source_length),
                          ("--max-target-length", max_target_length)):
        if value < 0:
            raise UsageError(f"{option} must be >= 0 (0: the fine-tuning's), got {value}")
    folder = model_folder(model_dir)
    check_decoding_options({"length_penalty": length_penalty, "max_source_len": max_source_length or None,
                            "max_target_len": max_target_length or None}, folder_max_length(folder))
    with status(f"decoding with {folder}"):
        scores = evaluate_seq2seq(folder, data or None, split or None, None if max_eval < 0 else max_eval,
                                  num_beams or None, length_penalty, max_source_length or None,
                                  max_target_length or None)
    numbers = {k: v for k, v in scores.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if as_json:
        print(json.dumps({"model": str(folder), "task": scores["task"], "eval_split": scores["eval_split"],
                          **numbers}))
        return
    console.print(table(f"{folder} on {scores['task']} ({scores['eval_split']})", ["metric", "value"],
                        [[k, v] for k, v in numbers.items()]))
