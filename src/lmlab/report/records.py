"""Results as data: one JSON record per measured model, so a report can be rebuilt and compared later.

A record says what was measured and how to trace it: the model and its family, where it sits in
the lineage (generation and year of the paper), the corpus with the split and a content hash of
the text it was scored on, the tokenizer and counting rule, every metric with its unit, the
seed, the parameter count and training FLOPs/seconds when known, the machine, the lmlab version
and git commit, the config, and a sentence on how the number was verified. ``lmlab demo`` writes
one per row into ``OUT/records/``; ``lmlab report`` reads any set of them
(:func:`read_records`) and :mod:`lmlab.report.html` turns them into the page.

The file format is plain JSON (``"format": "lmlab-record/1"``), one object per file; unknown keys
are refused so a misspelt field is seen, not silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import DataError, FormatError
from ..io import atomic_write_text

FORMAT = "lmlab-record/1"

# (pattern in the lower-cased model name, generation, year of the paper): the first match wins.
# Recipes may set a row's year themselves; this table places the rest on the lineage axis.
LINEAGE: tuple[tuple[str, str, int], ...] = (
    (r"add-one|laplace", "counting", 1948),
    (r"good-turing|katz", "statistical n-gram", 1987),
    (r"witten|bell", "statistical n-gram", 1991),
    (r"absolute|jelinek|mercer|interpolat", "statistical n-gram", 1980),
    (r"modified kn|mkn|chen", "statistical n-gram", 1998),
    (r"kneser|\bkn\b", "statistical n-gram", 1995),
    (r"maxent|maximum entropy", "adaptive", 1996),
    (r"cache", "adaptive", 1990),
    (r"mixture|topic", "adaptive", 1996),
    (r"nnlm|bengio", "neural LM", 2003),
    (r"lstm|rnn", "neural LM", 2014),
    (r"word2vec|skip-gram|cbow|\bsg\b", "word vectors", 2013),
    (r"glove", "word vectors", 2014),
    (r"fasttext", "word vectors", 2017),
    (r"elmo", "contextual vectors", 2018),
    (r"transformer-xl|transfo", "Transformer", 2019),
    (r"xlnet", "Transformer", 2019),
    (r"\bt5\b", "Transformer", 2020),
    (r"\bbart\b", "Transformer", 2020),
    (r"\bmass\b", "Transformer", 2019),
    (r"electra", "Transformer", 2020),
    (r"albert", "Transformer", 2020),
    (r"spanbert", "Transformer", 2020),
    (r"roberta", "Transformer", 2019),
    (r"bert", "Transformer", 2019),
    (r"gpt", "Transformer", 2018),
    (r"transformer", "Transformer", 2017),
)

UNITS = {
    "test ppl": "perplexity per word", "valid ppl": "perplexity per word", "test ppl excl. OOV": "perplexity per word",
    "bits/word": "bits", "OOVs": "count", "n-grams": "count", "vs MKN 3-gram %": "percent",
    "forward ppl": "perplexity per word", "backward ppl": "perplexity per word",
    "comparison ppl": "perplexity per word", "softmax test ppl": "perplexity per word", "tokens/s": "tokens per second",
    "accuracy": "fraction", "macro-F1": "fraction", "entity F1": "fraction", "analogy acc": "fraction",
    "analogy coverage": "fraction", "WS353 ρ": "Spearman", "SimLex ρ": "Spearman",
    "PER": "percent (phoneme error rate)", "WER": "percent (word error rate)", "BLEU": "BLEU, 0-100",
    "chrF": "chrF, 0-100",
}


def place(model: str) -> tuple[str, int | None]:
    """(generation, year) of a model by its name, from :data:`LINEAGE`; ("other", None) if none matches."""
    name = model.lower()
    for pattern, generation, year in LINEAGE:
        if re.search(pattern, name):
            return generation, year
    return "other", None


@dataclass
class Record:
    model: str
    family: str
    metrics: dict[str, float]
    units: dict[str, str] = field(default_factory=dict)
    generation: str = ""
    year: int | None = None
    group: str = ""                  # the demo group / registry family that produced it
    corpus: str = ""
    split: str = "test"
    corpus_sha256: str = ""          # of the text the metrics were computed on
    tokenizer: str = ""
    counting_rule: str = ""
    seed: int | None = None
    parameters: int | None = None
    train_flops: float | None = None
    flops_formula: str = ""          # how train_flops was computed (e.g. FLOPS_6ND)
    train_seconds: float | None = None
    machine: dict = field(default_factory=dict)
    lmlab_version: str = ""
    git_commit: str = ""
    config: dict = field(default_factory=dict)
    log: str | None = None           # a metrics.jsonl of the training run (loss curves), when there is one
    verified: str = ""
    notes: str = ""
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: str) -> Record:
        if not isinstance(data, dict):
            raise FormatError(f"{where}: a record is a JSON object")
        if data.get("format") != FORMAT:
            raise FormatError(f"{where}: not an lmlab record (format {data.get('format')!r}, expected {FORMAT!r})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FormatError(f"{where}: unknown record field {unknown[0]!r}")
        for key in ("model", "family", "metrics"):
            if key not in data:
                raise FormatError(f"{where}: record has no {key!r}")
        if not isinstance(data["metrics"], dict) or not all(
                isinstance(v, (int, float)) for v in data["metrics"].values()):
            raise FormatError(f"{where}: 'metrics' must map names to numbers")
        return cls(**data)


def machine() -> dict:
    """The machine a number was measured on, as far as Python can tell."""
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def git_commit(folder: str | Path | None = None) -> str:
    """The git commit of the lmlab checkout (with ``+dirty`` when it has changes), or "" outside git."""
    where = Path(folder) if folder else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def text_sha256(sentences) -> str:
    """A content hash of a tokenized text (one sentence per line, tokens joined by spaces)."""
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update((" ".join(sentence) + "\n").encode("utf-8"))
    return digest.hexdigest()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "record"


def write_records(records: list[Record], folder: str | Path) -> list[Path]:
    """One ``NN-slug.json`` per record in ``folder`` (numbered in the given order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, record in enumerate(records):
        path = folder / f"{i:03d}-{slug(record.model)}.json"
        atomic_write_text(path, record.to_json())
        paths.append(path)
    return paths


def read_records(paths) -> list[Record]:
    """Records from files and folders (a folder: its ``*.json``, and ``records/*.json`` under it), in order."""
    files: list[Path] = []
    for spec in paths:
        path = Path(spec)
        if path.is_dir():
            found = sorted(path.glob("*.json")) + sorted(path.glob("records/*.json"))
            files += [p for p in found if p.name != "config.json"]
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such record file or folder")
    if not files:
        raise DataError(f"no records (*.json) in {', '.join(map(str, paths))}")
    records = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FormatError(f"{file}: not a JSON record ({err})") from None
        if isinstance(data, dict) and "format" not in data and isinstance(data.get("ppl"), dict):
            records += from_softmax_bench(data, str(file))  # benchmarks/softmax_bench.py --json
            continue
        records.append(Record.from_dict(data, str(file)))
    return records


FLOPS_6ND = "6*N*D (N parameters, D training tokens: forward 2N + backward 4N multiply-adds per token; Kaplan et al. 2020)"


def transformer_train_flops(parameters: int, tokens: float) -> float:
    """Training FLOPs of a dense network by :data:`FLOPS_6ND`."""
    return 6.0 * float(parameters) * float(tokens)


def demo_train_flops(row) -> tuple[float | None, str]:
    """(training FLOPs, formula) of a demo row whose parameters and training tokens are known (its config's
    ``steps`` x batch x tokens per row), by 6·N·D (:data:`FLOPS_6ND`); (None, "") otherwise:
    the n-gram and adaptive rows count, they do not multiply-add, and rows without a config say nothing."""
    config = getattr(row, "config", None) or {}
    parameters = getattr(row, "parameters", None)
    steps = config.get("steps")
    batch = config.get("batch", config.get("batch_size"))
    length = config.get("bptt", config.get("segment", config.get("seq_len")))
    if not (parameters and steps and batch and length):
        return None, ""
    what = " (pretraining only)" if "finetune" in config else ""
    return transformer_train_flops(parameters, steps * batch * length), \
        f"{FLOPS_6ND}; D = {steps} steps x {batch} x {length} tokens{what}"


def from_demo_row(row, group: str, *, corpus: str, corpus_sha256: str, tokenizer: str, counting_rule: str,
                  seed: int, commit: str, host: dict) -> Record:
    """The record of one ``lmlab demo`` row."""
    from .. import __version__

    generation, year = place(row.model)
    flops, formula = demo_train_flops(row)
    return Record(
        model=row.model, family=row.family, metrics={k: float(v) for k, v in row.metrics.items()},
        units={k: UNITS.get(k, "") for k in row.metrics}, generation=generation,
        year=getattr(row, "year", None) or year, group=group, corpus=corpus, split="test",
        corpus_sha256=corpus_sha256, tokenizer=tokenizer, counting_rule=counting_rule if "test ppl" in row.metrics else "",
        seed=seed, parameters=getattr(row, "parameters", None), train_flops=flops, flops_formula=formula,
        train_seconds=row.train_seconds, machine=host,
        lmlab_version=__version__, git_commit=commit, config=dict(getattr(row, "config", {}) or {}),
        log=getattr(row, "log", None), verified=getattr(row, "verified", "") or "", notes=row.notes)


def compare(old: list[Record], new: list[Record], tolerance: float = 1e-9) -> list[tuple[str, str, float | None,
                                                                                           float | None]]:
    """(model, metric, old value, new value) for every metric that changed, appeared or disappeared."""
    def table(records):
        return {(r.model, m): v for r in records for m, v in r.metrics.items()}

    a, b = table(old), table(new)
    changes = []
    for key in list(dict.fromkeys([*a, *b])):
        va, vb = a.get(key), b.get(key)
        if va is None or vb is None or abs(va - vb) > tolerance * max(1.0, abs(va)):
            changes.append((key[0], key[1], va, vb))
    return changes


SMOOTHING_GROUP = "smoothing-comparison"   # records of the Chen & Goodman grid (plotted, not in the tables)
SOFTMAX_GROUP = "softmax-speed"            # records of benchmarks/softmax_bench.py --part ppl


def from_comparison_rows(rows, *, corpus: str, seed: int, commit: str, host: dict) -> list[Record]:
    """Records of :func:`lmlab.recipes.ngram.compare_methods` rows: one per method x order x training size."""
    from .. import __version__

    return [Record(model=f"{r.method} {r.order}-gram, {r.train_words:,} words", family="statistical",
                   metrics={"comparison ppl": float(r.perplexity)}, units={"comparison ppl": UNITS["comparison ppl"]},
                   generation="n-gram", group=SMOOTHING_GROUP, corpus=corpus, seed=seed,
                   train_seconds=float(r.seconds), machine=host, lmlab_version=__version__, git_commit=commit,
                   config={"method": r.method, "order": r.order, "train_words": r.train_words, "oovs": r.oovs,
                           "tokens": r.tokens},
                   notes="lmlab.recipes.ngram.compare_methods: the first part of the train sentences, "
                         "its own closed vocabulary (min count 2), per-word test perplexity")
            for r in rows]


def from_softmax_bench(result: dict, where: str) -> list[Record]:
    """Records of a ``benchmarks/softmax_bench.py --part ppl --json FILE`` result: one per network x output layer."""
    from .. import __version__

    ppl = result["ppl"]
    records = []
    for net in ("lstm", "nnlm"):
        runs = ppl.get(net, {})
        if not isinstance(runs, dict):
            raise FormatError(f"{where}: 'ppl.{net}' must map softmax kinds to results")
        for kind, run in runs.items():
            try:
                metrics = {"softmax test ppl": float(run["test_ppl"]), "tokens/s": float(run["tokens_per_s"])}
                seconds = float(run["train_s"])
            except (KeyError, TypeError, ValueError):
                raise FormatError(f"{where}: 'ppl.{net}.{kind}' needs test_ppl, tokens_per_s and train_s") from None
            records.append(Record(model=f"{net.upper()} {kind} softmax", family="neural LM", metrics=metrics,
                                  units={k: UNITS[k] for k in metrics}, generation="neural LM", group=SOFTMAX_GROUP,
                                  corpus="wiki-vital", train_seconds=seconds, lmlab_version=__version__,
                                  config={"network": net, "softmax": kind, "steps": run.get("steps")},
                                  notes=str(ppl.get("command", "benchmarks/softmax_bench.py --part ppl"))))
    return records
