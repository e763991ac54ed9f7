"""The one n-gram estimation pipeline: count -> adjust -> estimate -> prune.

Staged like KenLM's ``lmplz`` (``lm/builder/pipeline.hh``: one ``Pipeline(config, text,
out)`` that every front end calls). :func:`build` takes the training text and a
:class:`PipelineConfig` and returns an :class:`~lmlab.ngram.model.NgramModel`;
:func:`lmlab.ngram.build` and ``lmlab ngram build`` both run it, and the command only
prints the :class:`StageEvent` s it is sent, lmplz-style.

The stages, in order (a run goes through the ones its configuration needs):

``count``
    Read the text (when ``source`` is a loader) and count every n-gram of orders
    1..N (:mod:`.counts`). A :class:`Text` is split and counted in one pass over its
    bytes unless the run needs the sentences themselves (a closed vocabulary by count,
    or held-out tuning).
``adjust``
    Kneser-Ney methods only: KenLM's adjusted counts and their count-of-counts
    n1..n4 per order, the statistics lmplz prints in its stage 2 and that the discounts
    come from. (The smoother recomputes the adjusted counts itself; this costs about
    3% of a build.)
``estimate``
    Tune parameters on held-out text (methods with ``needs_heldout``; without held-out
    sentences every 10th training sentence is held out for tuning, the final counts
    use them all), then smooth the counts into a back-off model (:mod:`.smoothing`).
``prune``
    Only with a cut-off, an entropy threshold or a target size: count cut-offs
    first, then Stolcke relative-entropy pruning (:mod:`.prune`).

Writing the model (ARPA, binary) is not a stage here: the caller does it, except in
:func:`build_arpa` under a memory budget (``config.memory``), where the interpolated discounting
methods (mkn, kn, absolute) are estimated over per-order files on disk (:mod:`.ondisk`) and the
ARPA file is written as the estimate stage goes (the same bytes as :func:`build` then
:func:`~lmlab.ngram.arpa.write_arpa`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError
from ..io import atomic_open
from .counts import (
    BOS,
    EOS,
    UNK,
    NgramCounts,
    Vocabulary,
    adjusted_counts,
    count_ngrams,
    count_of_counts,
    count_text,
)
from .model import NgramModel, check_order
from .prune import prune_counts, prune_entropy
from .smoothing import KneserNey, ModifiedKneserNey, Smoother, make_smoother

STAGES = ("count", "adjust", "estimate", "prune")
HELDOUT_EVERY = 10  # without held-out text, every 10th training sentence tunes the parameters


@dataclass(frozen=True)
class Text:
    """Tokenized text as lmplz reads it: one sentence per line, tokens between whitespace.

    ``where`` names it in errors (a file name, ``stdin``). Blank lines are skipped.
    """

    data: bytes | str
    where: str = "text"

    def sentences(self) -> list[list[str]]:
        """The sentences as token lists (``[line.split() for line in lines if line.strip()]``)."""
        data = self.data
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{self.where}: not valid UTF-8 at byte {err.start}") from None
        sentences = [line.split() for line in data.splitlines() if line.strip()]
        if not sentences:
            raise DataError(f"{self.where}: no sentences (the file is empty)")
        return sentences


# What build() counts: sentences, a Text, or a zero-argument loader of either (called at the
# start of the count stage, so that reading the text is timed as counting, as in lmplz).
Source = Iterable[list[str]] | Text | Callable[[], Iterable[list[str]] | Text]
# Held-out sentences for tuning, or a loader of them (called only when the method tunes).
Heldout = Iterable[list[str]] | Callable[[], Iterable[list[str]]]


@dataclass
class PipelineConfig:
    """What to estimate: the options of ``lmlab ngram build`` (lmplz's flags in brackets).

    ``smoothing`` is a method name from :data:`lmlab.ngram.METHODS` or a ready
    :class:`~lmlab.ngram.smoothing.Smoother`; ``delta`` is add-delta's delta.
    ``vocab_min_count`` > 1 closes the vocabulary: words seen fewer times in the training
    text are counted as ``<unk>``. ``prune`` holds count cut-offs per order, the last one
    repeated for higher orders (``--prune``); ``prune_entropy`` is a Stolcke threshold and
    ``target_size`` a total number of n-grams to Stolcke-prune down to.
    """

    order: int = 3  # (-o)
    smoothing: str | Smoother = "mkn"
    delta: float = 0.5
    vocab_min_count: int = 1
    prune: Sequence[int] = field(default_factory=tuple)  # (--prune)
    prune_entropy: float | None = None
    target_size: int | None = None
    memory: str | int | None = None  # (-S) count under this budget: sorted runs spilled to disk, k-way merge
    temp: str | None = None  # (-T) folder for the runs (default: the system's temporary folder)
    workers: int = 1  # count chunks in this many processes (merged by the same merger)

    def make_smoother(self) -> Smoother:
        """The smoother (the given instance itself when ``smoothing`` is one)."""
        if isinstance(self.smoothing, Smoother):
            return self.smoothing
        return make_smoother(self.smoothing, delta=self.delta)

    @property
    def prunes(self) -> bool:
        """Whether the run has a prune stage."""
        return bool(self.prune) or self.prune_entropy is not None or self.target_size is not None

    def stages(self, smoother: Smoother | None = None) -> tuple[str, ...]:
        """The stages a run with this configuration goes through, in order."""
        smoother = smoother if smoother is not None else self.make_smoother()
        skip = set()
        if not isinstance(smoother, (KneserNey, ModifiedKneserNey)):
            skip.add("adjust")
        if not self.prunes:
            skip.add("prune")
        return tuple(s for s in STAGES if s not in skip)


@dataclass(frozen=True)
class StageEvent:
    """One stage starting or ending; ``phase`` is ``"start"`` or ``"end"``.

    At the end of a stage ``seconds`` is its wall time and its results are filled in:
    ``count``: ``sentences``, ``tokens`` (words plus one ``</s>`` per sentence), ``types``
    (the vocabulary size, specials included) and ``sizes`` (n-grams counted per order);
    ``adjust``: ``count_of_counts``, n1..n4 of the adjusted counts per order; ``estimate``:
    ``sizes`` (n-grams in the model per order) and ``info`` (the model's ``info``: method,
    discounts or tuned parameters); ``prune``: ``sizes`` (n-grams kept per order).
    """

    stage: str
    phase: str
    stages: tuple[str, ...]  # every stage of this run, in order
    seconds: float = 0.0
    sizes: tuple[int, ...] = ()
    sentences: int = 0
    tokens: int = 0
    types: int = 0
    count_of_counts: tuple[tuple[int, ...], ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def index(self) -> int:
        """1-based position of this stage in the run."""
        return self.stages.index(self.stage) + 1

    @property
    def total(self) -> int:
        """How many stages the run has."""
        return len(self.stages)


StageCallback = Callable[[StageEvent], None]


class _Progress:
    """Sends the start and end events of each stage to the callback (if any) and times the stages."""

    def __init__(self, stages: tuple[str, ...], on_stage: StageCallback | None):
        self.stages = stages
        self.on_stage = on_stage
        self.started = 0.0

    def start(self, stage: str) -> None:
        self.started = time.perf_counter()
        if self.on_stage is not None:
            self.on_stage(StageEvent(stage, "start", self.stages))

    def end(self, stage: str, sizes: Sequence[int] = (), sentences: int = 0, tokens: int = 0, types: int = 0,
            count_of_counts: tuple[tuple[int, ...], ...] = (), info: dict[str, Any] | None = None) -> None:
        seconds = time.perf_counter() - self.started
        if self.on_stage is not None:
            self.on_stage(StageEvent(stage, "end", self.stages, seconds=seconds, sizes=tuple(int(s) for s in sizes),
                                     sentences=sentences, tokens=tokens, types=types,
                                     count_of_counts=count_of_counts, info=dict(info or {})))


def min_count_vocabulary(sentences: Iterable[list[str]], min_count: int) -> Vocabulary:
    """A closed vocabulary: the specials, then every word seen at least ``min_count`` times, sorted.

    The same list as :func:`lmlab.data.vocab.closed_vocabulary` (which this package may not
    import; a test checks that the two agree), so ids do not depend on corpus order.
    """
    counts = Counter(w for s in sentences for w in s)
    specials = (UNK, BOS, EOS)
    return Vocabulary([*specials, *sorted(w for w, c in counts.items() if c >= min_count and w not in specials)])


def _count(source: Source, config: PipelineConfig, vocab: Vocabulary | None,
           need_sentences: bool) -> tuple[NgramCounts, list[list[str]] | None]:
    """The count stage: (counts, the training sentences when they were split out, else None)."""
    loaded = source() if callable(source) else source
    if isinstance(loaded, Text):
        if not need_sentences and config.vocab_min_count <= 1:
            if config.memory is not None or config.workers > 1:
                from .extsort import count_text_external

                data = loaded.data.encode("utf-8") if isinstance(loaded.data, str) else loaded.data
                return count_text_external(data, config.order, vocab, where=loaded.where,
                                           memory=config.memory if config.memory is not None else "25%",
                                           temp=config.temp, workers=config.workers), None
            return count_text(loaded.data, config.order, vocab, where=loaded.where), None
        sentences = loaded.sentences()
    else:
        sentences = loaded if isinstance(loaded, list) else list(loaded)
    if config.vocab_min_count > 1:
        vocab = min_count_vocabulary(sentences, config.vocab_min_count)
    return count_ngrams(sentences, config.order, vocab), sentences


def _fit(smoother: Smoother, counts: NgramCounts, sentences: list[list[str]] | None,
         heldout: Heldout | None) -> None:
    """Tune ``smoother`` on held-out text, or on every 10th training sentence without it."""
    held = heldout() if callable(heldout) else heldout
    held = list(held) if held is not None else []
    if held:
        smoother.fit_params(counts, held)
        return
    assert sentences is not None, "_count keeps the sentences when the method tunes"
    tune = [s for i, s in enumerate(sentences) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
    smoother.fit_params(count_ngrams(tune, counts.order, counts.vocab), sentences[HELDOUT_EVERY - 1::HELDOUT_EVERY])


def build(source: Source, config: PipelineConfig, on_stage: StageCallback | None = None, *,
          vocab: Iterable[str] | Vocabulary | None = None, heldout: Heldout | None = None) -> NgramModel:
    """Estimate an n-gram model: count -> adjust -> estimate -> prune (see the module docstring).

    ``source``: tokenized sentences (``<s>``/``</s>`` are added here), a :class:`Text`, or a
    zero-argument function returning either. ``on_stage`` is called with a
    :class:`StageEvent` when each stage starts and ends. ``vocab``: a closed vocabulary
    (other words count as ``<unk>``; not together with ``config.vocab_min_count``).
    ``heldout``: sentences (or a function returning them) for the methods that tune on
    held-out text; read only when the method does.
    """
    check_order(config.order)
    smoother = config.make_smoother()
    if vocab is not None and config.vocab_min_count > 1:
        raise UsageError("give a closed vocabulary or a vocab_min_count, not both")
    if vocab is not None and not isinstance(vocab, Vocabulary):
        vocab = Vocabulary(vocab)
    progress = _Progress(config.stages(smoother), on_stage)

    progress.start("count")
    counts, sentences = _count(source, config, vocab, need_sentences=smoother.needs_heldout)
    progress.end("count", sizes=[counts.size(n) for n in range(1, config.order + 1)],
                 sentences=counts.n_sentences, tokens=counts.n_tokens, types=counts.V)

    if "adjust" in progress.stages:
        progress.start("adjust")
        coc = tuple(tuple(count_of_counts(a, 4)[1:].tolist()) for a in adjusted_counts(counts))
        progress.end("adjust", count_of_counts=coc)

    progress.start("estimate")
    if smoother.needs_heldout:
        _fit(smoother, counts, sentences, heldout)
    model = smoother.estimate(counts)
    model.info.setdefault("order", config.order)
    progress.end("estimate", sizes=model.sizes(), info=model.info)

    if "prune" in progress.stages:
        progress.start("prune")
        if config.prune:
            model = prune_counts(model, counts, list(config.prune))
        if config.prune_entropy is not None or config.target_size is not None:
            model = prune_entropy(model, threshold=config.prune_entropy, target_size=config.target_size)
        progress.end("prune", sizes=model.sizes())
    return model


@dataclass(frozen=True)
class Written:
    """What :func:`build_arpa` wrote when it estimated on disk (a model's :meth:`describe`, without the model)."""

    order: int
    V: int
    sizes: tuple[int, ...]
    info: dict[str, Any]

    def describe(self) -> str:
        sizes = ", ".join(f"{n + 1}-grams: {s}" for n, s in enumerate(self.sizes))
        return f"{self.order}-gram {self.info.get('method', 'ARPA')} model, vocabulary {self.V}; {sizes}"


def on_disk(config: PipelineConfig) -> bool:
    """Whether :func:`build_arpa` estimates this configuration on disk (a Text source given): a memory
    budget, an interpolated discounting method, no pruning, no vocabulary by count."""
    from .ondisk import streams

    return (config.memory is not None and streams(config.make_smoother()) and not config.prunes
            and config.vocab_min_count <= 1)


def build_arpa(source: Source, config: PipelineConfig, out: str | os.PathLike, on_stage: StageCallback | None = None,
               *, vocab: Iterable[str] | Vocabulary | None = None, heldout: Heldout | None = None) -> NgramModel | Written:
    """Estimate and write the ARPA file ``out`` (``.gz``: gzip), atomically.

    With :func:`on_disk` and a :class:`Text` source the counts, adjusted counts and probabilities
    stay in files in a fresh folder inside ``config.temp`` (removed afterwards) and the file is
    written while estimating; returns a :class:`Written`. Otherwise :func:`build` then
    :func:`~lmlab.ngram.arpa.write_arpa`; returns the model. Same bytes either way.
    """
    from .arpa import write_arpa

    loaded = source() if callable(source) and on_disk(config) else source
    if not on_disk(config) or not isinstance(loaded, Text):
        model = build(loaded, config, on_stage, vocab=vocab, heldout=heldout)
        write_arpa(model, out)
        return model
    from .extsort import check_budget
    from .ondisk import OnDisk

    check_order(config.order)
    if vocab is not None and not isinstance(vocab, Vocabulary):
        vocab = Vocabulary(vocab)
    smoother = config.make_smoother()
    budget = check_budget(config.memory, config.temp, config.workers)
    progress = _Progress(config.stages(smoother), on_stage)
    data = loaded.data.encode("utf-8") if isinstance(loaded.data, str) else loaded.data
    path = os.fspath(out)
    with tempfile.TemporaryDirectory(prefix="lmlab-ngram-", dir=config.temp) as tmp:
        disk = OnDisk(Path(tmp), config.order, budget)
        progress.start("count")
        disk.count(data, vocab, loaded.where, config.workers)
        progress.end("count", sizes=disk.sizes, sentences=disk.n_sentences, tokens=disk.n_tokens, types=disk.sizes[0])
        kneser_ney = isinstance(smoother, (KneserNey, ModifiedKneserNey))
        if "adjust" in progress.stages:
            progress.start("adjust")
            disk.adjust(kneser_ney)
            progress.end("adjust", count_of_counts=tuple(c[1:] for c in disk.coc))
        progress.start("estimate")
        if not kneser_ney:
            disk.adjust(kneser_ney)
        with atomic_open(path, gz=path.endswith(".gz")) as f:
            info = disk.estimate(smoother, f)
        info.setdefault("order", config.order)
        progress.end("estimate", sizes=disk.sizes, info=info)
    return Written(config.order, disk.sizes[0], tuple(disk.sizes), info)
