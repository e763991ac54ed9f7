"""Model cards: a ``README.md`` in every saved model folder, in the Hugging Face model-card style.

The card opens with YAML front matter (``library_name``, ``tags``, ``datasets``, ``license`` and a
``model-index`` block whose ``results`` list the measured metrics with their task and dataset, as
the Hub reads them), then says in prose what the model is, what it was trained on and under which
licence, the metrics with the command that produced them, and how to load it. The YAML is written
with JSON scalars (YAML is a superset of JSON), so no YAML library is needed to write it; the
test parses it back with PyYAML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_text

# corpus -> (licence id as the Hub spells it, the sentence the card says)
LICENCES = {
    "wiki-vital": ("cc-by-sa-4.0", "text from English Wikipedia (CC BY-SA 4.0, (c) Wikipedia contributors); "
                   "the model and text sampled from it are derived from that text"),
    "wiki-vital-small": ("cc-by-sa-4.0", "a slice of English Wikipedia (CC BY-SA 4.0, (c) Wikipedia contributors)"),
}


def licence(corpus: str, data_licence: str = "") -> tuple[str, str]:
    """(licence id for the front matter, the sentence the card says) of a corpus or built-in task;
    ``data_licence`` is the built-in source's licence as the record carries it (the report reads
    records, never the data layer), empty for a user's own file."""
    if corpus in LICENCES:
        return LICENCES[corpus]
    if data_licence:
        return "other", f"the built-in `{corpus}` data (licence: {data_licence})"
    return "other", "the user's own data; its licence is theirs to state"


@dataclass
class CardMetric:
    task_type: str      # e.g. "text-generation", "fill-mask", "text-classification"
    task_name: str      # e.g. "Language modelling"
    metric_type: str    # e.g. "perplexity", "loss", "accuracy"
    name: str           # e.g. "eval perplexity per token"
    value: float
    dataset: str = ""
    split: str = "test"


def _y(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def front_matter(name: str, family: str, corpus: str, metrics: list[CardMetric], data_licence: str = "") -> str:
    lines = ["---", "library_name: lmlab", f"tags: [{_y('lmlab')}, {_y(family)}]"]
    if corpus:
        lines.append(f"datasets: [{_y(corpus)}]")
    lines += [f"license: {_y(licence(corpus, data_licence)[0])}", "model-index:", f"- name: {_y(name)}", "  results:"]
    if not metrics:
        lines[-1] = "  results: []"
    for m in metrics:
        lines += [f"  - task: {{type: {_y(m.task_type)}, name: {_y(m.task_name)}}}",
                  f"    dataset: {{name: {_y(m.dataset or corpus)}, type: {_y(m.dataset or corpus)}, "
                  f"split: {_y(m.split)}}}",
                  "    metrics:", f"    - {{type: {_y(m.metric_type)}, value: {_y(float(m.value))}, "
                  f"name: {_y(m.name)}}}"]
    lines.append("---")
    return "\n".join(lines) + "\n"


def write_card(folder: str | Path, *, name: str, family: str, summary: str, corpus: str,
               metrics: list[CardMetric], command: str, notes: str = "", data_licence: str = "") -> Path:
    """Write ``folder/README.md``; returns its path."""
    folder = Path(folder)
    licence_text = licence(corpus, data_licence)[1]
    body = [front_matter(name, family, corpus, metrics, data_licence), f"# {name}", "",
            f"An lmlab **{family}** model: {summary}." if summary else f"An lmlab **{family}** model.", "",
            "## Training data", "", f"`{corpus or 'unknown'}`: {licence_text}.", ""]
    body += ["## Results", ""]
    if metrics:
        body += ["| metric | value | split |", "|---|---|---|"]
        body += [f"| {m.name} | {m.value:.6g} | {m.split} |" for m in metrics]
    else:
        body.append("No evaluation was run.")
    body += ["", "Produced by:", "", "```bash", command, "```", ""]
    if notes:
        body += [notes, ""]
    body += ["## Use", "", "```python", "import lmlab", f"model = lmlab.load({_y(str(folder))})", "```", ""]
    atomic_write_text(folder / "README.md", "\n".join(body))
    return folder / "README.md"


# metrics a fine-tuning run's scores.json holds -> (task type, metric type, the card's name for it)
FINETUNE_METRICS = {
    "accuracy": ("accuracy", "test accuracy"),
    "macro_f1": ("f1", "test macro-F1"),
    "entity_f1": ("f1", "test entity F1 (spans)"),
    "f1": ("f1", "test F1"),
    "exact_match": ("exact_match", "test exact match"),
    "bleu": ("bleu", "test BLEU"),
    "chrf": ("chrf", "test chrF"),
    "majority_baseline": ("accuracy", "majority-class accuracy (baseline)"),
}
TASK_TYPES = {"tagging": "token-classification", "extractive QA": "question-answering",
              "sequence-to-sequence": "text2text-generation", "sentence pairs": "text-classification"}


def finetune_record(out_dir: str | Path, task: str, source: str, scores: dict, command: str, kind: str = "",
                    data_licence: str = ""):
    """The result record of one ``lmlab finetune`` run (``out_dir/records/000-….json``), and its model card.

    ``scores`` is what the run wrote to ``scores.json``; the card goes into ``out_dir/model/README.md``
    when that folder exists. Returns the record."""
    from .records import UNITS, Record, git_commit, machine, write_records

    out_dir = Path(out_dir)
    metrics = {name: float(scores[key]) for key, (_, name) in FINETUNE_METRICS.items()
               if isinstance(scores.get(key), int | float) and not isinstance(scores.get(key), bool)}
    from .. import __version__

    record = Record(model=f"{Path(str(source)).parent.name or source} -> {task}", family="fine-tuned",
                    metrics=metrics, units={k: UNITS.get(k, "fraction") for k in metrics}, generation="fine-tuning",
                    group="finetune", corpus=task, split="test", seed=scores.get("seed"),
                    train_seconds=float(scores["seconds"]) if isinstance(scores.get("seconds"), int | float) else None,
                    machine=machine(), lmlab_version=__version__, git_commit=git_commit(),
                    config={"task": task, "kind": kind or "sequence classification", "base": str(source),
                            "command": command, **({"data_licence": data_licence} if data_licence else {}),
                            **{k: scores[k] for k in ("n_train", "n_test", "steps", "best_step", "train_loss")
                               if isinstance(scores.get(k), int | float)}},
                    notes=f"{source} fine-tuned on {task}", verified="scored on the task's test split by lmlab finetune")
    folder = out_dir / "records"
    for stale in folder.glob("*.json") if folder.is_dir() else ():
        stale.unlink()
    write_records([record], folder)
    card_from_record(out_dir / "model", record)
    return record


def card_from_record(folder: str | Path, record) -> Path | None:
    """Write ``folder/README.md`` from a fine-tuning record (what ``lmlab report`` refreshes); None without the folder."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return None
    kind = str(record.config.get("kind", ""))
    task_type = TASK_TYPES.get(kind, "text-classification")
    by_name = {name: metric for metric, name in FINETUNE_METRICS.values()}
    metrics = [CardMetric(task_type, kind or "sequence classification", by_name.get(name, "other"), name, value,
                          record.corpus, record.split) for name, value in record.metrics.items()]
    config = record.config
    counts = ", ".join(f"{k.replace('_', ' ')} {config[k]:,}" for k in ("n_train", "n_test") if k in config)
    return write_card(folder, name=record.model, family=record.family,
                      summary=f"{config.get('base', '?')} fine-tuned on `{record.corpus}`"
                              + (f" ({counts})" if counts else ""),
                      corpus=record.corpus, metrics=metrics, command=str(config.get("command", "")),
                      notes="Kept true by `lmlab report`: the card is rewritten from the run's record "
                            f"(`records/`); {record.verified}.",
                      data_licence=str(config.get("data_licence", "")))
