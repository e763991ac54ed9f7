"""One Trainer for every neural family: the loop, and the three small protocols it runs on.

The Trainer gets a model (``nn.Module``), an objective, a batch source and a
:class:`TrainConfig`. It never knows which model or objective it runs.

The protocols (what a family provides)
======================================

``BatchSource`` — random access, deterministic::

    source.batch(step: int, shard: int, shards: int) -> LongTensor [B, T]  (or a tuple: ids first)

  The global batch of optimiser step ``step`` (0-based: the number of updates already
  taken) is cut into ``shards`` equal, disjoint parts; return part ``shard``. The
  Trainer calls it with ``shards = grad_accum · world`` and ``shard = micro · world + rank``,
  so the same (step, shard, shards) always means the same rows, in any process. Resume
  is "continue at step"; 1 process × 4 micro-batches and 2 processes × 2 micro-batches
  see the same global batch. A source lays out rows as ``rows [step·B·shards + shard·B,
  … + B)`` of its stream, so ``shards × B`` is all that matters (4×B ≡ 4B). For
  truncated BPTT, shard ``i`` at step ``s`` must continue shard ``i`` at step ``s − 1``
  (the stream is cut into ``shards·B`` lanes, step ``s`` takes chunk ``s`` of each lane).
  A source may return a tuple / list / dict of tensors or numpy arrays (ids and document
  ids, ids and lengths…); it goes to ``objective.prepare`` as it is, numpy arrays turned
  into tensors, and its first tensor counts as the token ids (for tokens/s).
  ``lmlab.data.stream`` (LMBlocks, BPTTBatches, PackedSequences, SentenceRows) implements it.

``EvalSource`` — a fixed, finite, deterministic evaluation set::

    source.eval_batches(rank: int, world: int) -> Iterable[LongTensor]

``Objective`` — pure functions (DESIGN.md, "Objectives are pure")::

    objective.prepare(ids, generator) -> batch          # anything made of tensors
    objective.loss(model, batch) -> (loss_sum, n_targets)

  ``loss_sum`` is the **sum** (not the mean) of the per-target losses of this
  micro-batch, a scalar tensor with its graph; ``n_targets`` is how many targets it
  summed over (int or tensor). The Trainer back-propagates the sums, adds up
  ``n_targets`` over the accumulation window and over processes, and divides the
  gradients by that global count before clipping and stepping. So the update is the
  gradient of ``Σ loss / Σ n`` over the whole global batch, exactly what one big batch
  gives, however it is split into micro-batches and processes (averaging per-micro-
  batch means instead is the known bug: it weights short batches too much).
  ``loss`` may also return a :class:`LossOutput` to report extra summed metrics.

  Carried state (truncated BPTT for RNN LMs): an objective with ``stateful = True``
  is called as ``loss(model, batch, state) -> (loss_sum, n_targets, new_state)``;
  ``state`` is ``None`` at the start and otherwise what it returned for the same
  micro-batch slot at the previous step, detached (that is the truncation). A state is
  a tensor or a (nested) tuple / list / dict of tensors; it is saved in checkpoints.
  Evaluation carries its own state across ``eval_batches`` in order.

Optional model hooks: ``model.flops_per_token(seq_len) -> float`` (training FLOPs per
token, for MFU; default 6 × parameters outside ``nn.Embedding`` tables, Kaplan et al.
2020), ``model.no_weight_decay() -> set[str]`` (parameter names to keep out of weight
decay, besides every parameter with fewer than 2 dimensions: biases and norm gains).

Randomness: one seed drives everything. Before micro-batch ``shard`` of step ``s`` the
Trainer seeds the global torch RNG (dropout) and a fresh ``torch.Generator`` (handed to
``prepare``: masking, sampling) from ``(seed, s, shard)``; an evaluation batch's generator
is seeded from ``seed`` and a CRC of its token ids. Hence two runs with one seed
are identical, a resumed run replays the same randomness, and the draws do not depend
on the number of processes. RNG states are checkpointed as well.

What this file does not do: build models or data (the family's builder does, see
``lmlab.cli.train``), mixed-precision loss scaling (bf16 needs none), FSDP / tensor
parallelism.
"""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, LmlabError, UsageError
from ..protocols import BatchSource, EvalSource, LossOutput, Objective
from . import checkpoint, distributed
from .checkpoint import RESUMABLE_CHANGES  # noqa: F401 - the train keys a resume may change
from .schedules import Schedule

# --------------------------------------------------------------------------- config


_NESTED_PROGRESS: ContextVar[str] = ContextVar("lmlab_nested_progress", default="off")


@contextmanager
def nested_progress(mode: str = "auto"):
    """Within it, the loops of :meth:`TrainConfig.quiet` show their progress (``mode`` as
    ``train.progress``: "auto" is a bar on a terminal, else a line with the ETA every 5% of the
    steps). ``lmlab finetune`` trains inside it; demo rows and benchmarks stay silent."""
    token = _NESTED_PROGRESS.set(mode)
    try:
        yield
    finally:
        _NESTED_PROGRESS.reset(token)


@dataclass
class TrainConfig:
    """The ``[train]`` table of a run file. Every knob of the loop, nothing about the model."""

    seed: int = 0
    max_steps: int = 1000
    grad_accum: int = 1
    # optimiser
    optimizer: Literal["adamw", "sgd", "lamb"] = "adamw"   # lamb: lmlab.train.optim (ALBERT's)
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0
    nesterov: bool = False
    # schedule (see lmlab.train.schedules)
    schedule: Literal["constant", "linear", "cosine", "noam"] = "constant"
    warmup_steps: int = 0
    min_lr: float = 0.0
    d_model: int = 0
    schedule_steps: int = 0   # the linear/cosine horizon; 0: max_steps (a resume keeps the checkpoint's)
    clip_norm: float | None = 1.0
    # evaluation and early stopping
    eval_every: int = 0
    patience: int = 0
    save_best: bool = True
    # checkpoints
    checkpoint_every: int = 0
    checkpoint_minutes: float = 0.0   # also checkpoint at the first step boundary this long after the last
    keep_last: int = 3
    # hardware
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    threads: int = 0
    deterministic: bool = True
    # logging
    log_every: int = 1
    progress: Literal["auto", "on", "off"] = "auto"
    tensorboard: bool = True
    plot: bool = True
    mfu: bool = True

    @classmethod
    def quiet(cls, **fields) -> TrainConfig:
        """A TrainConfig for a loop run inside another command (a demo row, a fine-tuning flow, a
        benchmark): no TensorBoard, loss plot or MFU estimate, and no progress unless the caller is
        inside :func:`nested_progress` (``lmlab finetune``); ``fields`` as usual."""
        return cls(**{"progress": _NESTED_PROGRESS.get(), "tensorboard": False, "plot": False, "mfu": False, **fields})

    def validate(self) -> None:
        positive = {"max_steps": self.max_steps, "grad_accum": self.grad_accum, "log_every": self.log_every,
                    "keep_last": self.keep_last}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {value}")
        for name in ("eval_every", "patience", "checkpoint_every", "checkpoint_minutes", "warmup_steps",
                     "threads", "schedule_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if self.clip_norm is not None and self.clip_norm < 0:
            raise ConfigError(f"train.clip_norm must be >= 0 or none, got {self.clip_norm}")
        self.make_schedule()

    def make_schedule(self) -> Schedule:
        return Schedule(self.schedule, self.lr, self.warmup_steps, self.schedule_steps or self.max_steps,
                        self.min_lr, self.d_model)


# Keys that may change between a run and its resumption (cadence, logging, length).
@dataclass
class TrainingJob:
    """What a family's builder hands the CLI: everything the Trainer runs, plus an exporter.

    ``export(folder)`` writes the trained model as a saved-model folder (config.json +
    model.safetensors + tokenizer files); ``describe`` is one line for the console.
    """

    model: nn.Module
    objective: Objective
    train_source: BatchSource
    eval_source: EvalSource | None = None
    export: Callable[[Path], None] | None = None
    describe: str = ""


@dataclass
class TrainResult:
    step: int
    loss: float
    eval: dict[str, float]
    best_eval_loss: float | None
    stopped_early: bool
    checkpoint: Path | None
    out_dir: Path


class TrainingInterrupted(LmlabError):
    """``fit`` stopped on SIGINT / SIGTERM after saving a checkpoint at the step boundary.

    ``checkpoint`` is the folder a ``fit(resume=True)`` continues from (None when the run was
    stopped before its first step and there is nothing to resume); ``exit_code`` is 128 + the
    signal number (130 for SIGINT, 143 for SIGTERM), what a shell reports for a signalled process.
    """

    def __init__(self, signum: int, step: int, checkpoint: Path | None):
        self.signum = int(signum)
        self.step = step
        self.checkpoint = checkpoint
        self.exit_code = 128 + self.signum
        where = f"checkpoint {checkpoint}" if checkpoint is not None else "nothing saved (no step taken)"
        super().__init__(f"interrupted by {self.signal_name} at step {step}; {where}")

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


class _StopSignals:
    """While ``fit`` runs: SIGINT and SIGTERM only ask the loop to stop at the next step boundary.

    The first signal is recorded (the loop saves a checkpoint and raises TrainingInterrupted);
    repeats are ignored (torchrun forwards the terminal's Ctrl-C a second time), except a SIGINT
    sent at least a second after the first, which raises KeyboardInterrupt at once (abort without
    saving; the previous checkpoint stays valid). Installed only in the main thread.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum = 0
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if not self.signum:
            self.signum = signum
            self._first_at = time.monotonic()
        elif signum == signal.SIGINT and time.monotonic() - self._first_at >= 1.0:
            raise KeyboardInterrupt

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()


# --------------------------------------------------------------------------- helpers

_MASK64 = (1 << 64) - 1


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64 chain): stable across processes and runs."""
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state + (int(part) & _MASK64) + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state & ((1 << 63) - 1)


_EVAL_SALT = 0xE7A1


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it on ``device`` (dicts, lists, tuples, dataclasses)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(batch, **{f.name: move_to(getattr(batch, f.name), device)
                                             for f in dataclasses.fields(batch) if f.init})
    return batch


def as_tensors(data: Any) -> Any:
    """A source's output with numpy arrays turned into tensors (structure kept)."""
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(data))
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(as_tensors(v) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(as_tensors(v) for v in data)
    if isinstance(data, dict):
        return {k: as_tensors(v) for k, v in data.items()}
    return data


def first_tensor(data: Any) -> torch.Tensor:
    """The token ids of a source's output: the tensor itself, or the first one in it."""
    if isinstance(data, torch.Tensor):
        return data
    items = data.values() if isinstance(data, dict) else data if isinstance(data, (list, tuple)) else ()
    for item in items:
        try:
            return first_tensor(item)
        except UsageError:
            continue
    raise UsageError(f"the batch source returned {type(data).__name__} with no tensor in it")


def content_crc(data: Any, crc: int = 0) -> int:
    """CRC-32 of every tensor in ``data`` (order-sensitive)."""
    if isinstance(data, torch.Tensor):
        return zlib.crc32(data.detach().cpu().contiguous().numpy().tobytes(), crc)
    items = data.values() if isinstance(data, dict) else data if isinstance(data, (list, tuple)) else ()
    for item in items:
        crc = content_crc(item, crc)
    return crc


def detach_state(state: Any) -> Any:
    """Cut the graph behind a carried state (truncated back-propagation through time)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(v) for v in state)
    return state


def unpack_loss(result: Any, stateful: bool) -> LossOutput:
    """Normalise what ``Objective.loss`` returned into a :class:`LossOutput`."""
    if isinstance(result, LossOutput):
        return result
    if isinstance(result, tuple):
        if stateful and len(result) == 3:
            return LossOutput(result[0], result[1], state=result[2])
        if not stateful and len(result) == 2:
            return LossOutput(result[0], result[1])
    want = "(loss_sum, n_targets, new_state)" if stateful else "(loss_sum, n_targets)"
    raise UsageError(f"objective.loss returned {type(result).__name__}; expected {want} or LossOutput")


def default_flops_per_token(model: nn.Module) -> float:
    """6 × parameters that take part in matrix products (all but nn.Embedding tables)."""
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    seen: set[int] = set()
    n = 0
    for p in model.parameters():
        if id(p) in seen or id(p) in embedding:
            continue
        seen.add(id(p))
        n += p.numel()
    return 6.0 * n


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weights with ≥ 2 dims, none on biases, norm gains, listed names."""
    hook = getattr(model, "no_weight_decay", None)
    named_exempt = set(hook()) if callable(hook) else set()
    decay, no_decay, seen = [], [], set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (no_decay if param.ndim < 2 or name in named_exempt else decay).append(param)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay)
    if not groups:
        raise UsageError("the model has no trainable parameters")
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)
    if config.optimizer == "lamb":
        from .optim import Lamb

        return Lamb(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast only where it helps: GPUs with bf16 support; on CPU only when asked."""
    if precision == "bf16":
        return True
    if precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return False


# --------------------------------------------------------------------------- trainer


class Trainer:
    """The training loop. ``Trainer(model, objective, source, config, out_dir).fit()``.

    ``out_dir`` receives ``metrics.jsonl``, ``checkpoints/`` (with a ``latest`` pointer),
    ``best/model.safetensors`` (best evaluation loss), ``loss.png`` and ``tensorboard/``.
    ``run_config`` (a plain dict, e.g. the whole run file) is stored in every checkpoint
    and must match on resume.
    """

    def __init__(self, model: nn.Module, objective: Objective, train_source: BatchSource, config: TrainConfig,
                 out_dir: str | Path, eval_source: EvalSource | None = None, run_config: dict | None = None):
        config.validate()
        if not callable(getattr(train_source, "batch", None)):
            raise UsageError("train_source has no batch(step, shard, shards) method")
        if eval_source is not None and not callable(getattr(eval_source, "eval_batches", None)):
            raise UsageError("eval_source has no eval_batches(rank, world) method")
        for name in ("prepare", "loss"):
            if not callable(getattr(objective, name, None)):
                raise UsageError(f"objective has no {name}() method")
        self.model = model
        self.objective = objective
        self.train_source = train_source
        self.eval_source = eval_source
        self.config = config
        self.out_dir = Path(out_dir)
        self.run_config = run_config or {}
        self.stateful = bool(getattr(objective, "stateful", False))
        self.schedule = config.make_schedule()
        # loop state, all of it checkpointed
        self.step = 0
        self.tokens_seen = 0
        self.best_eval_loss: float | None = None
        self.bad_evals = 0
        self.stopped_early = False
        self.carried: dict[int, Any] = {}  # micro index -> state (this process's shards)
        self.last_eval: dict[str, float] = {}
        self.last_loss = float("nan")
        self.last_seq_len = 0
        self.resume_note: str | None = None  # set by load_checkpoint: a one-line notice (schedule horizon)
        self._set_up_done = False

    # ------------------------------------------------------------------ set-up

    def _set_up(self) -> None:
        if self._set_up_done:
            return
        cfg = self.config
        self._threads_before = torch.get_num_threads()  # fit() puts it back when it returns
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        local_rank = distributed.local_rank_from_env()
        self.device = resolve_device(cfg.device, local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.dist = distributed.init_from_env(self.device)
        if cfg.deterministic:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.bf16 = use_bf16(cfg.precision, self.device)
        seed_everything(cfg.seed)
        self.model.to(self.device)
        distributed.broadcast_module(self.model, self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, cfg)
        self.forward_model = torch.compile(self.model) if cfg.compile else self.model
        fpt = getattr(self.model, "flops_per_token", None)
        self._flops_per_token = fpt if callable(fpt) else None
        self._default_flops = default_flops_per_token(self.model)
        self._set_up_done = True

    # ------------------------------------------------------------------ one step

    def _micro_seed(self, step: int, shard: int) -> int:
        return mix_seed(self.config.seed, step, shard)

    def train_step(self) -> dict[str, float]:
        """One optimiser update (``grad_accum`` micro-batches on every process); returns its metrics."""
        self._set_up()
        cfg, rank, world = self.config, self.dist.rank, self.dist.world
        step = self.step  # updates already taken: the data position
        lr = self.schedule.lr_at(step + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        shards = cfg.grad_accum * world
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss_sum, n_targets, tokens
        metric_sums: dict[str, float] = {}
        seq_len = 0
        for micro in range(cfg.grad_accum):
            shard = micro * world + rank
            seed = self._micro_seed(step, shard)
            torch.manual_seed(seed)  # dropout and any other global draw
            generator = torch.Generator().manual_seed(seed)
            ids = as_tensors(self.train_source.batch(step, shard, shards))
            first = first_tensor(ids)
            seq_len = int(first.shape[-1]) if first.ndim else 1
            batch = move_to(self.objective.prepare(ids, generator), self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                if self.stateful:
                    raw = self.objective.loss(self.forward_model, batch, self.carried.get(micro))
                else:
                    raw = self.objective.loss(self.forward_model, batch)
            out = unpack_loss(raw, self.stateful)
            loss_sum = out.loss_sum.float() if out.loss_sum.dtype in (torch.bfloat16, torch.float16) \
                else out.loss_sum
            loss_sum.backward()
            if self.stateful:
                self.carried[micro] = detach_state(out.state)
            totals[0] += loss_sum.detach().to(torch.float64)
            totals[1] += float(out.n_targets) if not isinstance(out.n_targets, torch.Tensor) \
                else out.n_targets.detach().to(torch.float64)
            totals[2] += first.numel()
            for key, value in out.metrics.items():
                metric_sums[key] = metric_sums.get(key, 0.0) + float(value)
        extra = sorted(metric_sums)
        if extra:
            totals = torch.cat([totals, torch.tensor([metric_sums[k] for k in extra], dtype=torch.float64,
                                                     device=self.device)])
        distributed.all_reduce_sum(totals)
        distributed.all_reduce_grads(self.params)
        n_targets = float(totals[1])
        scale = 1.0 / max(n_targets, 1.0)
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(scale)
        max_norm = cfg.clip_norm if cfg.clip_norm else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        loss = float(totals[0]) * scale
        if not math.isfinite(loss):
            raise LmlabError(f"step {step + 1}: the loss is {loss}; lower train.lr or set train.clip_norm")
        self.optimizer.step()
        self.step = step + 1
        self.tokens_seen += int(totals[2])
        self.last_loss = loss
        record = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                  "targets": int(n_targets), "tokens": int(totals[2])}
        for i, key in enumerate(extra):
            record[key] = float(totals[3 + i]) * scale
        self.last_seq_len = seq_len
        return record

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss per target (and its exp, perplexity) on the eval source, summed over processes."""
        self._set_up()
        if self.eval_source is None:
            return {}
        self.model.eval()
        totals = torch.zeros(2, dtype=torch.float64, device=self.device)
        state = None
        cpu_rng = torch.get_rng_state()
        for ids in self.eval_source.eval_batches(self.dist.rank, self.dist.world):
            ids = as_tensors(ids)
            # seeded by content, so the draws do not depend on which process scores the batch
            content = content_crc(ids)
            generator = torch.Generator().manual_seed(mix_seed(self.config.seed, _EVAL_SALT, content))
            batch = move_to(self.objective.prepare(ids, generator), self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                if self.stateful:
                    out = unpack_loss(self.objective.loss(self.forward_model, batch, state), True)
                    state = out.state
                else:
                    out = unpack_loss(self.objective.loss(self.forward_model, batch), False)
            totals[0] += out.loss_sum.detach().to(torch.float64)
            totals[1] += float(out.n_targets) if not isinstance(out.n_targets, torch.Tensor) \
                else out.n_targets.detach().to(torch.float64)
        torch.set_rng_state(cpu_rng)
        distributed.all_reduce_sum(totals)
        self.model.train()
        if float(totals[1]) == 0:
            raise UsageError("the evaluation source produced no targets")
        loss = float(totals[0] / totals[1])
        result = {"eval_loss": loss, "eval_targets": int(totals[1])}
        if getattr(self.objective, "is_language_model", False):  # exp(loss) is a perplexity only for LM losses
            result["eval_ppl"] = math.exp(min(loss, 700.0))
        return result

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-NNNNNNNN`` atomically, point ``latest`` at it, keep the last K."""
        self._set_up()
        return checkpoint.save(self)

    def load_checkpoint(self, path: str | Path | None = None) -> Path:
        """Restore everything from ``path`` (default: the ``latest`` checkpoint)."""
        self._set_up()
        return checkpoint.load(self, Path(path) if path is not None else None)

    # ------------------------------------------------------------------ the loop

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to ``max_steps`` (or early stop); ``resume=True`` continues from ``latest``.

        Checkpoints: every ``checkpoint_every`` steps, at the first step boundary
        ``checkpoint_minutes`` after the previous save, and at the end. SIGINT / SIGTERM
        (in the main thread) stop the loop at the next step boundary: it saves a checkpoint
        there and raises :class:`TrainingInterrupted` (every process stops at the same step).
        """
        with _StopSignals() as stop:
            return self._fit(resume, stop)

    def _fit(self, resume: bool, stop: _StopSignals) -> TrainResult:
        from .log import MetricsLog, measured_peak_flops

        self._set_up()
        cfg = self.config
        main = self.dist.is_main
        if resume:
            self.load_checkpoint()
            if self.resume_note and main:
                print(f"lmlab: {self.resume_note}", file=sys.stderr, flush=True)
        else:  # every process checks (a shared folder), so none is left waiting at a barrier
            checkpoint.refuse_to_clobber(self.checkpoint_dir())
        distributed.barrier()
        peak = measured_peak_flops(self.device, self.bf16) if (cfg.mfu and main) else None
        log = MetricsLog(self.out_dir, enabled=main, total_steps=cfg.max_steps, start_step=self.step,
                         progress=cfg.progress, tensorboard=cfg.tensorboard)
        last_saved: Path | None = None
        saved_step = self.step if resume else -1  # the step the newest checkpoint holds
        saved_at = time.monotonic()
        try:
            signum, _ = self._agree(stop.signum, False)
            if signum and self.step < cfg.max_steps:  # stopped while setting up: the checkpoint resumed from
                self._interrupted(signum, saved_step, last_saved)
            while self.step < cfg.max_steps and not self.stopped_early:
                started = time.perf_counter()
                record = self.train_step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                elapsed = max(time.perf_counter() - started, 1e-9)
                seq_len = self.last_seq_len
                record["tokens_per_s"] = record["tokens"] / elapsed
                if peak:
                    fpt = self._flops_per_token(seq_len) if self._flops_per_token else self._default_flops
                    record["mfu"] = fpt * record["tokens_per_s"] / (peak * self.dist.world)
                evaluated = False
                if self.eval_source is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                    self._eval_and_track(record)
                    evaluated = True
                if self.step == cfg.max_steps and self.eval_source is not None and not evaluated:
                    self._eval_and_track(record)
                    evaluated = True
                if evaluated or self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    log.write(record)
                log.advance(record)
                # rank 0's clock decides the time-based checkpoint, so every process saves together
                late = bool(cfg.checkpoint_minutes) and time.monotonic() - saved_at >= 60.0 * cfg.checkpoint_minutes
                signum, late = self._agree(stop.signum, late)
                due = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                if due or late or signum or self.step == cfg.max_steps or self.stopped_early:
                    last_saved = self.save_checkpoint()
                    saved_step, saved_at = self.step, time.monotonic()
                if signum and self.step < cfg.max_steps and not self.stopped_early:  # (a finished run just ends)
                    self._interrupted(signum, saved_step, last_saved)
            if last_saved is None and self.step > 0 and main:
                last_saved = checkpoint.latest_path(self.checkpoint_dir())
        finally:
            log.close(plot=cfg.plot)
            torch.set_num_threads(self._threads_before)  # the thread count is process-wide
        return TrainResult(self.step, self.last_loss, dict(self.last_eval), self.best_eval_loss,
                           self.stopped_early, last_saved, self.out_dir)

    def _agree(self, signum: int, late: bool) -> tuple[int, bool]:
        """(a stop signal any process got, whether rank 0's checkpoint clock ran out), on every process.

        One tiny all-reduce per step boundary under torchrun (none for one process): a signal
        reaches the processes at slightly different moments, and all must stop at the same step.
        """
        if self.dist.world <= 1:
            return signum, late
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        flags = torch.tensor([float(signum), 1.0 if (late and self.dist.is_main) else 0.0],
                             dtype=torch.float64, device=device)
        distributed.all_reduce_max(flags)
        return int(flags[0]), bool(flags[1])

    def _interrupted(self, signum: int, saved_step: int, last_saved: Path | None) -> None:
        folder = last_saved
        if folder is None and saved_step == self.step and self.step > 0:
            folder = checkpoint.latest_path(self.checkpoint_dir())
        raise TrainingInterrupted(signum, self.step, folder)

    def _eval_and_track(self, record: dict) -> None:
        metrics = self.evaluate()
        self.last_eval = metrics
        record.update(metrics)
        loss = metrics["eval_loss"]
        if self.best_eval_loss is None or loss < self.best_eval_loss:
            self.best_eval_loss = loss
            self.bad_evals = 0
            if self.config.save_best and self.dist.is_main:
                checkpoint.save_best(self)
        else:
            self.bad_evals += 1
            if self.config.patience and self.bad_evals >= self.config.patience:
                self.stopped_early = True
                record["stopped_early"] = True
        distributed.barrier()
