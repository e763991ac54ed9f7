"""Batch prediction throughput: ``lmlab.pipeline("text-classification")`` vs Hugging Face ``pipeline``.

The same weights on both sides: a BERT classifier (hidden 256, 4 layers, 4 heads, intermediate
1024, a WordPiece vocabulary of 8192 trained on the rotten-tomatoes train split, [CLS] pooling) is
saved as an lmlab folder and exported through the HF key map (``lmlab.interop.hf_bert.save_hf``) to
a ``BertForSequenceClassification`` whose classifier layer gets the lmlab head's weights. The two
are checked to give the same probabilities on the same texts before anything is timed. Weights
are random (a trained model runs at the same speed): the benchmark measures the pipelines, not
accuracy.

Workload: the first N reviews of the rotten-tomatoes test split (as they come, unsorted), batch
size 32, at most 128 tokens, fp32, ``--threads`` torch threads. lmlab sorts the texts by length
and pads each batch to its own longest text; HF's pipeline batches them in the order given. Rounds
alternate between the two (lmlab, HF, lmlab, HF, ...: ABAB) so a change in machine load hits both;
the reported speed-up is the median over rounds of (HF round time / the lmlab round just before it),
with the best round of each beside it. ``--budget`` (seconds, default 170) stops starting new rounds
once another one would not fit, so a run ends within about 3 minutes (at least one round each).

    .venv/bin/python benchmarks/predict_bench.py [--texts 1000] [--rounds 3] [--threads 2] [--budget 170] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def build(folder: Path, texts: list[str]):
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.interop.hf_bert import save_hf
    from lmlab.models.bert import BertForPreTraining
    from lmlab.recipes.bert_family import make_model
    from lmlab.tasks.classification import SequenceClassifier, save_classifier

    tokenizer = train_tokenizer("wordpiece", texts, vocab_size=8192)
    torch.manual_seed(0)
    sizes = {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024}
    bert = make_model("bert", tokenizer.vocab_size, {"pad": tokenizer.special_ids()["pad"]}, sizes)
    head = SequenceClassifier.on(bert, ["rotten", "fresh"], max_len=128)
    torch.nn.init.normal_(head.out.weight, std=0.5)
    save_classifier(head, tokenizer, folder / "lmlab", "benchmark", {"data": {}})
    full = BertForPreTraining(bert.config)
    full.bert.load_state_dict(head.encoder.state_dict())
    save_hf(full, folder / "hf", tokenizer_files=tokenizer.files())
    return head, tokenizer


def hf_pipeline(folder: Path, head, tokenizer):
    from tokenizers.processors import TemplateProcessing
    from transformers import BertForSequenceClassification, PreTrainedTokenizerFast, pipeline

    model = BertForSequenceClassification.from_pretrained(folder / "hf", num_labels=2,
                                                          id2label={0: "rotten", 1: "fresh"},
                                                          label2id={"rotten": 0, "fresh": 1})
    with torch.no_grad():
        model.classifier.weight.copy_(head.out.weight)
        model.classifier.bias.copy_(head.out.bias)
    ids = tokenizer.special_ids()
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "hf" / "tokenizer.json"), cls_token="[CLS]",
                                     sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    hf_tok._tokenizer.post_processor = TemplateProcessing(single="[CLS] $A [SEP]",
                                                          special_tokens=[("[CLS]", ids["cls"]), ("[SEP]", ids["sep"])])
    return pipeline("text-classification", model=model.eval(), tokenizer=hf_tok, device=-1, truncation=True,
                    max_length=128, top_k=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--budget", type=float, default=170.0, help="seconds for the whole run (rounds stop early)")
    parser.add_argument("--out", default="")
    parser.add_argument("--record", default="", help="write an lmlab.report record of the printed results into this folder")
    args = parser.parse_args()
    if args.record:  # the printed numbers as one lmlab record
        from lmlab.report.bench import record_at_exit
        record_at_exit(args.record, __file__)
    begun = time.perf_counter()
    torch.set_num_threads(args.threads)
    import lmlab
    from lmlab.data import sources

    splits = sources.load("rotten-tomatoes").split()
    texts = [d.text for d in splits.test][: args.texts]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        head, tokenizer = build(tmp, [d.text for d in splits.train])
        ours = lmlab.pipeline("text-classification", tmp / "lmlab")
        theirs = hf_pipeline(tmp, head, tokenizer)
        # parity first: the same probabilities for the same texts
        check = texts[:64]
        a = ours(check, batch_size=args.batch_size, top_k=None)
        b = theirs(check, batch_size=args.batch_size)
        diff = max(abs({r["label"]: r["score"] for r in x}[k] - {r["label"]: r["score"] for r in y}[k])
                   for x, y in zip(a, b) for k in ("rotten", "fresh"))
        assert diff < 1e-4, f"lmlab and HF disagree by {diff}"
        times = {"lmlab": [], "hf": []}
        for _ in range(args.rounds):
            spent = time.perf_counter() - begun
            if times["hf"] and spent + times["lmlab"][-1] + times["hf"][-1] > args.budget:
                break
            for name, run in (("lmlab", lambda: ours(texts, batch_size=args.batch_size)),
                              ("hf", lambda: theirs(texts, batch_size=args.batch_size))):
                started = time.perf_counter()
                with torch.inference_mode():
                    run()
                times[name].append(time.perf_counter() - started)
    best = {k: min(v) for k, v in times.items()}
    ratios = [h / a for a, h in zip(times["lmlab"], times["hf"])]
    row = {"texts": len(texts), "threads": args.threads, "batch_size": args.batch_size, "max_abs_prob_diff": diff,
           "lmlab_texts_per_s": len(texts) / best["lmlab"], "hf_texts_per_s": len(texts) / best["hf"],
           "speedup_median_of_rounds": statistics.median(ratios), "speedup_best_rounds": best["hf"] / best["lmlab"],
           "round_ratios": ratios, "rounds": times, "load_average": os.getloadavg(),
           "seconds": time.perf_counter() - begun}
    print(json.dumps(row, indent=2))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
