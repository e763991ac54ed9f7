"""``wiki-qa``: a DERIVED extractive-QA set built from ``wiki-vital`` (no human-annotated QA set is
reachable offline). It is not SQuAD; read its limits below before quoting a number on it.

Construction, for every wiki-vital article with a human-written short description whose lead
section mentions the article's title (as a whole word or phrase, any case; the first mention is the answer):

- question: the description (e.g. "Capital and largest city of France"), as it is; no question words;
- context: the article's lead and 2-4 distractor leads of other articles of the same topic, in a
  seeded random order, joined by blank lines; distractors never contain the title;
- answer: the title's first mention in the lead, as written there (text and character offset in the context);
- unanswerable: for one article in three (chosen by a hash of its id), also the description
  paired with 3-5 leads of articles of other topics, none containing the title.

Splits follow wiki-vital's own split by article (``Corpus.split()``, 80/10/10), and distractors are
drawn only from the same split, so no test paragraph is seen in training and, for an encoder
pretrained on wiki-vital's train split, no test context was seen in pretraining either.

Limits: the answer is always the article's title, so a model can learn "find the entity the
description describes" rather than general reading; the lead usually begins with the title,
so position is a strong cue (the distractor order hides it only partly); descriptions are
noun phrases, not questions; string matching misses leads that name the subject differently
(those articles are left out).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .corpus import split_fraction


@dataclass
class QAExample:
    """A question over a context; ``answers`` are (text, character start) pairs, none when unanswerable."""

    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class WikiQA:
    train: list[QAExample]
    valid: list[QAExample]
    test: list[QAExample]
    n_articles: int             # articles with a description whose lead contains the title


def _mention(title: str):
    """The title as a whole word or phrase, any case (``re`` pattern)."""
    return re.compile(r"(?<!\w)" + re.escape(title) + r"(?!\w)", re.IGNORECASE)


def _draw(rng: random.Random, pool: list, k: int, keep) -> list:
    """Up to ``k`` items of ``pool`` that pass ``keep``, in a seeded random order (stops once it has them)."""
    out = []
    for index in rng.sample(range(len(pool)), len(pool)):
        if len(out) == k:
            break
        if keep(pool[index]):
            out.append(pool[index])
    return out


def examples_of(docs: list, seed: int = 0, unanswerable_every: int = 3) -> list[QAExample]:
    """The QA examples of one split's wiki-vital documents (``Document`` with title, description, topic)."""
    by_topic: dict[str, list] = {}
    for d in docs:
        by_topic.setdefault(d.meta.get("topic") or "", []).append(d)
    out = []
    for d in docs:
        title, description = d.meta.get("title") or "", (d.meta.get("description") or "").strip()
        mention = _mention(title) if title else None
        found = mention.search(d.text) if mention else None
        if not description or found is None:
            continue
        rng = random.Random(f"{seed}:{d.id}")
        topic = d.meta.get("topic") or ""
        free = lambda o: o.id != d.id and mention.search(o.text) is None  # noqa: B023 (used at once)
        paragraphs = [p.text for p in _draw(rng, by_topic[topic], rng.randint(2, 4), free)]
        paragraphs.insert(rng.randint(0, len(paragraphs)), d.text)
        context = "\n\n".join(paragraphs)
        offset = context.index(d.text) + found.start()
        out.append(QAExample(d.id, description, context, [(found.group(), offset)]))
        if split_fraction(d.id, seed=seed + 99) < 1 / unanswerable_every:
            others = [o for o in docs if (o.meta.get("topic") or "") != topic]
            picked = _draw(rng, others, rng.randint(3, 5), free)
            if picked:
                out.append(QAExample(f"{d.id}#none", description, "\n\n".join(p.text for p in picked), []))
    return out


def build(corpus=None, seed: int = 0) -> WikiQA:
    """The three splits of ``wiki-qa`` (from the built-in ``wiki-vital`` unless a corpus is given)."""
    from . import sources

    corpus = corpus if corpus is not None else sources.load("wiki-vital")
    splits = corpus.split()
    parts = [examples_of(part, seed) for part in (splits.train, splits.valid, splits.test)]
    n_articles = sum(1 for part in parts for ex in part if ex.answers)
    return WikiQA(*parts, n_articles=n_articles)
