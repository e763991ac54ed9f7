"""``lmlab demo`` rows of the families whose recipes have no demo of their own: ELMo and Transformer-XL.

Both read the demo's shared word-level stream and closed vocabulary (:class:`lmlab.report.DemoData`),
train with the Trainer for a part of the share :mod:`lmlab.cli.demo` gave them (``data.deadline``),
and are scored exactly as every other word LM of the table, per word on ``data.test_sentences``
(:func:`lmlab.eval.perplexity.word_perplexity`; ``</s>`` counted once per sentence, ``<s>`` context
only, OOVs as ``<unk>``).

- ELMo (Peters et al. 2018, "Deep contextualized word representations"): the character-CNN biLM
  of :mod:`lmlab.models.elmo` trained on the forward and backward streams in lockstep
  (:class:`lmlab.objectives.bilm.BiLMObjective`); the row gives the forward, backward and mean
  perplexity (the mean of the two directions' log-probabilities, bilm-tf's number, is ``test ppl``).
- Transformer-XL (Dai et al. 2019, "Transformer-XL: Attentive Language Models Beyond a
  Fixed-Length Context"): segment recurrence with a memory carried between BPTT segments
  (:mod:`lmlab.models.transfo_xl`, :class:`lmlab.objectives.bptt.BPTTObjective`).

The time spent scoring the whole test stream is measured up front on a twentieth of it; when it
would take more than 30% of the share, every k-th test sentence is scored instead (the same
counting rule on a systematic sample of the stream; the row's notes say so). Training gets what
is left of the share after that (at most 60% of it) and stops between optimiser steps; a share
too small for both gives a skipped row that says why.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..report import DemoData, DemoRow
from .scoring import plan_scoring, scored_note


def _budget(data: DemoData, cap: float = 90.0) -> float:
    return max(0.0, min(cap, data.seconds_left()))


def _fit_and_score(data: DemoData, budget: float, model, trainer, score, family: str, label: str):
    """Time ``score`` up front, train for what is left of the share, score the test stream (or every
    stride-th sentence of it): (steps, training seconds, ``score(sentences)``, a note on what was
    scored), or a skipped row saying why."""
    from ..recipes.word_lm import train_for

    with torch.no_grad():
        seconds, stride = plan_scoring(data, budget, model, score)
    if seconds < 3:
        return DemoRow(family, f"{label} (skipped)",
                       notes=f"scoring the test stream alone would take most of its {budget:.0f} s share")
    steps, took = train_for(trainer, seconds, 10**9)
    model.eval()
    with torch.no_grad():
        return steps, took, score(data.test_sentences[::stride]), scored_note(data, stride)


def _quiet(seed: int, lr: float):
    from ..train.trainer import TrainConfig

    return TrainConfig.quiet(seed=seed, max_steps=10**9, lr=lr, weight_decay=0.0, clip_norm=1.0)


def elmo_demo(data: DemoData) -> list[DemoRow]:
    """ELMo's biLM (tiny preset widths) on the shared stream: forward / backward / mean test perplexity."""
    from ..data.stream import BPTTStream, StackedStreams, bptt_documents, reversed_documents
    from ..eval.perplexity import encode_sentences
    from ..models import elmo
    from ..objectives.bilm import BiLMObjective
    from ..recipes.elmo import perplexities
    from ..recipes.word_lm import unigram_counts
    from ..train.trainer import Trainer

    budget = _budget(data)
    if budget < 15:
        return [DemoRow("contextual LM", "ELMo biLM (skipped)", notes=f"time share too small ({budget:.0f} s)")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices; a shared machine's spinning OpenMP threads only slow them
    try:
        torch.manual_seed(data.seed)
        vocab = list(data.vocab)
        train_ids, _ = encode_sentences(data.train_sentences, vocab)
        config = elmo.ElmoConfig(char_embed_dim=8, projection_dim=64, cell_dim=128, n_highway=1,
                                 filters=[[1, 16], [2, 16], [3, 32], [4, 32]], dropout=0.1)
        model = elmo.build(config, vocab, unigram_counts(train_ids, len(vocab)))
        bos, eos, V = config.bos_id, config.eos_id, len(vocab)
        documents = [train_ids]
        fwd, fwd_starts = bptt_documents(documents, bos)
        bwd, bwd_starts = bptt_documents(reversed_documents(documents, bos), eos)
        source = StackedStreams([BPTTStream(fwd, fwd_starts, V, 16, 35), BPTTStream(bwd, bwd_starts, V, 16, 35)])
        trainer = Trainer(model, BiLMObjective(V, bos, eos), source, _quiet(data.seed, 3e-3),
                          Path(data.out_dir) / "elmo")
        done = _fit_and_score(data, budget, model, trainer, lambda sents: perplexities(model, sents, vocab),
                              "contextual LM", "ELMo biLM")
        if isinstance(done, DemoRow):
            return [done]
        steps, took, result, scored = done
    finally:
        torch.set_num_threads(threads)
    n_params = sum(p.numel() for p in model.parameters())
    return [DemoRow("contextual LM", "ELMo biLM 2x128->64, char-CNN (Peters 2018)",
                    {"test ppl": result["mean"].perplexity, "forward ppl": result["forward"].perplexity,
                     "backward ppl": result["backward"].perplexity}, took,
                    f"{steps} steps x 16x35 tokens per direction ({steps * 16 * 35 / len(fwd):.2f} epochs); "
                    f"test ppl = mean of the two directions' log-probabilities{scored}", year=2018,
                    verified="same scorer and counting rule as the other word LMs (lmlab.eval.perplexity)",
                    parameters=n_params,
                    config={"char_embed_dim": 8, "projection_dim": 64, "cell_dim": 128, "n_layers": 2,
                            "filters": config.filters, "batch": 16, "bptt": 35, "lr": 3e-3, "steps": steps})]


def transfo_xl_demo(data: DemoData) -> list[DemoRow]:
    """A small Transformer-XL (segment 32, memory 32, adaptive softmax) on the shared stream."""
    from ..data.stream import BPTTStream, bptt_documents
    from ..eval.perplexity import encode_sentences, word_perplexity
    from ..models import transfo_xl
    from ..objectives.bptt import BPTTObjective
    from ..train.trainer import Trainer

    budget = _budget(data)
    if budget < 15:
        return [DemoRow("transformer", "Transformer-XL (skipped)", notes=f"time share too small ({budget:.0f} s)")]
    torch.manual_seed(data.seed)
    vocab = list(data.vocab)
    bos = vocab.index("<s>")
    train_ids, _ = encode_sentences(data.train_sentences, vocab)
    # the closed vocabulary is sorted by count, so the cutoffs cut it into frequency bands
    cutoffs = [c for c in (2000, 6000) if c < len(vocab) - 1]
    config = transfo_xl.TransfoXLConfig(vocab_size=len(vocab), cutoffs=cutoffs, div_val=2, d_model=128, d_embed=128,
                                        n_head=4, d_head=32, d_inner=256, n_layer=2, mem_len=32, dropout=0.1,
                                        bos_token_id=bos, eos_token_id=vocab.index("</s>"))
    model = transfo_xl.build(config, vocab)
    stream, starts = bptt_documents([train_ids], bos)
    trainer = Trainer(model, BPTTObjective(len(vocab), bos), BPTTStream(stream, starts, len(vocab), 16, 32),
                      _quiet(data.seed, 2.5e-3), Path(data.out_dir) / "transfo-xl")
    done = _fit_and_score(data, budget, model, trainer, lambda sents: word_perplexity(model, sents, vocab),
                          "transformer", "Transformer-XL")
    if isinstance(done, DemoRow):
        return [done]
    steps, took, result, scored = done
    n_params = sum(p.numel() for p in model.parameters())
    return [DemoRow("transformer", "Transformer-XL 2x128, mem 32, adaptive softmax (Dai 2019)",
                    {"test ppl": result.perplexity, "bits/byte": result.bits_per_byte}, took,
                    f"{steps} steps x 16x32 tokens ({steps * 16 * 32 / len(stream):.2f} epochs), segment 32 + memory "
                    f"32, cutoffs {cutoffs}; test sentences scored one by one (no memory across them){scored}", year=2019,
                    verified="same scorer and counting rule as the other word LMs (lmlab.eval.perplexity)",
                    parameters=n_params,
                    config={"d_model": 128, "n_layer": 2, "n_head": 4, "d_inner": 256, "mem_len": 32,
                            "cutoffs": cutoffs, "div_val": 2, "batch": 16, "segment": 32, "lr": 2.5e-3,
                            "steps": steps})]


# ----------------------------------------------------------------------------- XLNet -> rotten-tomatoes


def xlnet_demo(data: DemoData) -> list[DemoRow]:
    """XLNet (Yang et al. 2019, "XLNet: Generalized Autoregressive Pretraining") pretrained with the BERT
    rows' budget (:data:`lmlab.recipes.bert_family.DEMO_PRETRAIN`: steps x batch x tokens, 1,500 training
    documents, WordPiece 4,096) by its recipe (:func:`lmlab.recipes.xlnet.build`: permutation LM, K = 6),
    then fine-tuned on rotten-tomatoes with their fine-tuning budget and mean pooling: a row of the
    classifier table beside BERT's."""
    import tempfile

    from ..recipes.bert_family import DEMO_FINETUNE, DEMO_PRETRAIN
    from ..recipes.run import RunFile
    from ..recipes.xlnet import build
    from ..tasks.classification import FinetuneSpec, finetune
    from ..train.budget import OverBudget
    from ..train.trainer import TrainConfig, Trainer

    label = "xlnet (tiny) -> rotten-tomatoes"
    if data.seconds_left() < 30:
        return [DemoRow("transformer", label, notes=f"skipped: time share too small ({data.seconds_left():.0f} s)")]
    pre, ft = DEMO_PRETRAIN, DEMO_FINETUNE
    threads = torch.get_num_threads()
    started = time.monotonic()
    try:
        torch.manual_seed(data.seed)
        run = RunFile({"family": "xlnet",
                       "data": {"corpus": data.corpus_name, "seq_len": pre["seq_len"], "batch_size": pre["batch_size"],
                                "max_documents": pre["max_documents"], "eval_documents": 8, "seed": data.seed},
                       "tokenizer": {"kind": "wordpiece", "vocab_size": pre["vocab_size"]},
                       "model": {"preset": "xlnet-tiny"}, "objective": {"K": 6, "max_gram": 5}}, "demo-xlnet")
        job = build(run)
        n_params = sum(p.numel() for p in job.model.parameters())
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig.quiet(seed=data.seed, max_steps=pre["steps"], lr=1e-3, schedule="linear",
                                       warmup_steps=max(1, pre["steps"] // 10), weight_decay=0.01, threads=1,
                                       device="cpu", precision="fp32")
            result = Trainer(job.model, job.objective, job.train_source, config, Path(tmp) / "pretrain").fit()
            job.export(Path(tmp) / "pre")
            spec = FinetuneSpec(task="rotten-tomatoes", steps=ft["steps"], batch_size=ft["batch_size"],
                                max_len=ft["max_len"], lr=ft["lr"], pooling="mean", seed=data.seed, threads=1)
            scores = finetune(Path(tmp) / "pre", spec, Path(tmp) / "ft")
    except OverBudget as stopped:
        return [DemoRow("transformer", label, notes=str(stopped))]
    finally:
        torch.set_num_threads(threads)
    return [DemoRow("transformer", label,
                    {"test acc": scores["accuracy"], "macro-F1": scores["macro_f1"],
                     "majority acc": scores["majority_baseline"], "pretrain loss": result.loss},
                    time.monotonic() - started,
                    f"budget: pretrain {pre['steps']} steps x {pre['batch_size']} x {pre['seq_len']} tokens "
                    f"(permutation LM, K=6, WordPiece {pre['vocab_size']}; {n_params / 1e6:.2f}M params) on the demo "
                    f"corpus's train split (first {pre['max_documents']} documents), fine-tune {spec.steps} steps x "
                    f"{spec.batch_size} x {spec.max_len} (mean pooling); test split by movie (n={scores['n_test']})",
                    year=2019, parameters=n_params,
                    verified="the BERT rows' pretraining and fine-tuning budgets (lmlab.recipes.bert_family)",
                    config={"preset": "xlnet-tiny", **pre, "finetune": ft})]


# ----------------------------------------------------------------------------- encoder-decoders on g2p

SEQ2SEQ_TASK = "g2p"
SEQ2SEQ = {"steps": 100, "batch_size": 32, "lr": 2e-3, "max_train": 5000, "max_eval": 50, "max_len": 32}
SEQ2SEQ_SIZE = {"d_model": 64, "n_heads": 2, "n_encoder_layers": 2, "n_decoder_layers": 2, "d_ff": 256}
SEQ2SEQ_PRETRAIN = {"steps": 40, "batch_size": 16, "seq_len": 64, "max_documents": 500, "vocab_size": 2000}
T5_TOKENIZER_PAIRS = 3000  # T5's unigram tokenizer is trained on the first training pairs' words and phonemes


def seq2seq_baselines(pairs: dict) -> list[tuple[str, list[str], str]]:
    """(name, outputs for the test sources, what it is) of the two no-model baselines on g2p: each letter
    copied as a phoneme symbol, and the most frequent training pronunciation for every word."""
    from collections import Counter

    test = pairs["test"][: SEQ2SEQ["max_eval"]]
    frequent = Counter(t for _, t in pairs["train"]).most_common(1)[0][0]
    return [("copy the source (letters as phonemes)", [" ".join(ch.upper() for ch in s if ch.isalpha()) for s, _ in test],
             "every letter of the word, upper-cased, as one phoneme symbol"),
            ("most frequent training output", [frequent] * len(test),
             f"the most frequent pronunciation in the training split ({frequent!r}) for every word")]


def _seq2seq_folder(family: str, folder: Path, data: DemoData, pairs: dict):
    """A saved encoder-decoder of ``family`` at :data:`SEQ2SEQ_SIZE` for :func:`finetune_seq2seq`; (folder, note).

    BART and MASS are pretrained first by their denoising recipe (:mod:`lmlab.recipes.denoise`, text infilling
    vs MASS's span masking) on the demo's training documents for :data:`SEQ2SEQ_PRETRAIN` steps; T5 and the
    Transformer start from random weights (T5's span corruption is not run in the demo's time)."""
    from ..data.tokenizers import train_tokenizer
    from ..recipes.bert_family import pretrain
    from ..recipes.seq2seq import BOS, EOS, PAD, PairVocab, g2p_entries

    torch.manual_seed(data.seed)
    if family == "transformer":
        from ..models.transformer import Transformer, TransformerConfig

        vocab = PairVocab.for_g2p(g2p_entries()[0])
        model = Transformer(TransformerConfig(src_vocab_size=len(vocab.source), tgt_vocab_size=len(vocab.target),
                                              share_embeddings=False, dropout=0.1, max_length=64, pad_token_id=PAD,
                                              bos_token_id=BOS, eos_token_id=EOS, **SEQ2SEQ_SIZE))
        return model.save_pretrained(folder, extra_files=vocab.files(), metadata={"data": {"task": "g2p"}}), \
            "letters -> phonemes vocabularies, random initialisation (no pretraining)"
    if family == "t5":
        from ..models.t5 import T5Config, T5ForConditionalGeneration

        first = pairs["train"][:T5_TOKENIZER_PAIRS]
        texts = [s for s, _ in first] + [t for _, t in first]
        tok = train_tokenizer("unigram", texts, vocab_size=400)
        pad, eos = tok.token_to_id("<pad>"), tok.token_to_id("</s>")
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=tok.vocab_size + 4, d_model=SEQ2SEQ_SIZE["d_model"], d_kv=32, d_ff=SEQ2SEQ_SIZE["d_ff"],
            n_heads=SEQ2SEQ_SIZE["n_heads"], n_encoder_layers=SEQ2SEQ_SIZE["n_encoder_layers"],
            n_decoder_layers=SEQ2SEQ_SIZE["n_decoder_layers"], dropout=0.1, pad_token_id=pad, eos_token_id=eos,
            decoder_start_token_id=pad, max_length=64))
        return model.save_pretrained(folder, extra_files=tok.files()), \
            (f"unigram tokenizer of the first {T5_TOKENIZER_PAIRS:,} g2p training words and pronunciations, random "
             "initialisation (no pretraining)")
    from ..recipes.denoise import DataSpec, TokenizerSpec, prepare

    p = SEQ2SEQ_PRETRAIN
    prepared = prepare(family, DataSpec(corpus=data.corpus_name, max_documents=p["max_documents"], seq_len=p["seq_len"],
                                        batch_size=p["batch_size"], eval_documents=0, seed=data.seed),
                       TokenizerSpec(kind="bytebpe", vocab_size=p["vocab_size"]), {"preset": "tiny", **SEQ2SEQ_SIZE},
                       {}, documents=data.train_documents)
    done = pretrain(prepared, p["steps"], folder.parent / f"{family}-pretrain", lr=1e-3, seed=data.seed, threads=1)
    what = "text infilling" if family == "bart" else "MASS span masking"
    return prepared.model.save_pretrained(folder, extra_files=prepared.tokenizer.files()), \
        (f"byte BPE {p['vocab_size']}, pretrained {p['steps']} steps x {p['batch_size']} x {p['seq_len']} tokens "
         f"({what}, final loss {done['loss']:.2f}) on the demo's train documents")


def seq2seq_demo(data: DemoData) -> list[DemoRow]:
    """The encoder-decoders (Transformer, T5, BART, MASS; 2+2 layers x 64) fine-tuned on g2p (cmudict word ->
    phonemes) with one budget (:data:`SEQ2SEQ`) through :func:`lmlab.tasks.seq2seq.finetune_seq2seq`, greedy
    decoding of the first test words, scored by :func:`lmlab.tasks.seq2seq.score_outputs` (PER, WER, BLEU,
    chrF), beside two baselines scored the same way."""
    import tempfile

    from ..tasks.seq2seq import Seq2SeqFinetuneSpec, finetune_seq2seq, g2p_pairs, score_outputs
    from ..train.budget import OverBudget, time_up

    def metrics(scores: dict) -> dict:
        return {"PER": scores["per"], "WER": scores["wer"], "BLEU": scores["bleu"], "chrF": scores["chrf"]}

    pairs = g2p_pairs()
    test = pairs["test"][: SEQ2SEQ["max_eval"]]
    rows = [DemoRow("seq2seq", name, metrics(score_outputs(SEQ2SEQ_TASK, outputs, [t for _, t in test])), 0.0,
                    f"baseline: {what}; first {len(test)} cmudict test words")
            for name, outputs, what in seq2seq_baselines(pairs)]
    families = [("transformer", "Transformer (Vaswani 2017)", 2017), ("t5", "T5 (Raffel 2020)", 2020),
                ("bart", "BART (Lewis 2020)", 2020), ("mass", "MASS (Song 2019)", 2019)]
    threads = torch.get_num_threads()
    s = SEQ2SEQ
    spec = Seq2SeqFinetuneSpec(steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], warmup_steps=20,
                               max_source_len=s["max_len"], max_target_len=s["max_len"], max_train=s["max_train"],
                               max_eval=s["max_eval"], seed=data.seed, threads=1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for family, label, year in families:
                name = f"{label} -> g2p"
                if time_up() or data.seconds_left() < 10:
                    rows.append(DemoRow("seq2seq", name, notes="skipped: its time share was spent"))
                    continue
                started = time.monotonic()
                try:
                    folder, note = _seq2seq_folder(family, Path(tmp) / family, data, pairs)
                    scores = finetune_seq2seq(folder, SEQ2SEQ_TASK, spec, Path(tmp) / f"{family}-ft")
                except OverBudget as stopped:
                    rows.append(DemoRow("seq2seq", name, notes=str(stopped)))
                    continue
                n_params = sum(p.numel() for p in _load(Path(tmp) / f"{family}-ft" / "model").parameters())
                rows.append(DemoRow("seq2seq", name, metrics(scores), time.monotonic() - started,
                                    f"{note}; fine-tuned {spec.steps} steps x {spec.batch_size} pairs "
                                    f"(lr {spec.lr:g}, label smoothing {spec.label_smoothing}), greedy decoding of "
                                    f"the first {scores['n_eval']} test words", year=year, parameters=n_params,
                                    verified="lmlab.tasks.seq2seq.score_outputs, the scorer of lmlab finetune",
                                    config={"family": family, **SEQ2SEQ_SIZE, **SEQ2SEQ}))
    finally:
        torch.set_num_threads(threads)
    return rows


def _load(folder: Path):
    import lmlab

    return lmlab.load(folder)
