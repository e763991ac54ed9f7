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


def front_matter(name: str, family: str, corpus: str, metrics: list[CardMetric]) -> str:
    licence = LICENCES.get(corpus, ("other", ""))[0]
    lines = ["---", "library_name: lmlab", f"tags: [{_y('lmlab')}, {_y(family)}]"]
    if corpus:
        lines.append(f"datasets: [{_y(corpus)}]")
    lines += [f"license: {_y(licence)}", "model-index:", f"- name: {_y(name)}", "  results:"]
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
               metrics: list[CardMetric], command: str, notes: str = "") -> Path:
    """Write ``folder/README.md``; returns its path."""
    folder = Path(folder)
    licence_text = LICENCES.get(corpus, ("other", "the user's own data; its licence is theirs to state"))[1]
    body = [front_matter(name, family, corpus, metrics), f"# {name}", "",
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
