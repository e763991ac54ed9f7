"""What a training run reports: JSONL metrics, TensorBoard, a progress bar, a loss curve, MFU.

- ``<out>/metrics.jsonl``: one JSON object per logged step — ``step``, ``loss`` (per target,
  over the whole global batch), ``lr``, ``grad_norm`` (before clipping), ``targets``,
  ``tokens``, ``tokens_per_s``, ``mfu`` and, on evaluation steps, ``eval_loss``,
  ``eval_ppl``. On resume, lines past the checkpoint's step (written by the run that
  died) are dropped, so the file always reads as one uninterrupted run.
- TensorBoard event files in ``<out>/tensorboard/`` when ``torch.utils.tensorboard``
  works (the ``tensorboard`` package is installed).
- A rich progress bar with loss and tokens/s on a terminal; plain lines otherwise.
- ``<out>/loss.png`` at the end when matplotlib is installed.
- Model FLOPs utilisation (Chowdhery et al., 2022, PaLM, appendix B): achieved model
  FLOP/s (``flops_per_token × tokens/s``) over the peak FLOP/s of the hardware. The peak is
  *measured* here, with the largest matmul rate seen over a few square products at
  start-up (fp32 on CPU, bf16 when autocast is on), and cached in ``$LMLAB_CACHE``
  (default ``~/.cache/lmlab``) per device, dtype, thread count and torch version.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from ..io import atomic_write_text

METRICS = "metrics.jsonl"


def cache_dir() -> Path:
    return Path(os.environ.get("LMLAB_CACHE") or Path.home() / ".cache" / "lmlab")


def _device_key(device: torch.device, dtype: torch.dtype) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        name = f"{name} x{torch.get_num_threads()} threads"
    return f"{device.type}|{name}|{str(dtype).replace('torch.', '')}|torch {torch.__version__}"


def measure_matmul_flops(device: torch.device, dtype: torch.dtype, n: int | None = None,
                         seconds: float = 0.5) -> float:
    """Best observed FLOP/s of an ``n × n`` by ``n × n`` matmul (2n³ FLOPs each)."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=None)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    best = math.inf
    deadline = time.perf_counter() + seconds
    reps = 0
    while reps < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
        reps += 1
    return 2.0 * n**3 / best


def measured_peak_flops(device: torch.device, bf16: bool) -> float:
    """The machine's peak matmul FLOP/s for the training dtype, measured once and cached."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    key = _device_key(device, dtype)
    path = cache_dir() / "peak_flops.json"
    table: dict = {}
    if path.is_file():
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            table = {}
    if isinstance(table, dict) and isinstance(table.get(key), (int, float)) and table[key] > 0:
        return float(table[key])
    rng = torch.get_rng_state()  # measuring must not disturb the run's randomness
    peak = measure_matmul_flops(device, dtype)
    torch.set_rng_state(rng)
    table = table if isinstance(table, dict) else {}
    table[key] = peak
    try:
        atomic_write_text(path, json.dumps(table, indent=1) + "\n")
    except OSError:  # a read-only cache is not a reason to stop training
        pass
    return peak


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
    return rows


def plot_loss(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Training (and evaluation) loss against step, as a PNG; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="train loss", linewidth=1)
    evals = [r for r in rows if "eval_loss" in r]
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path)
    plt.close(fig)
    return png_path


class MetricsLog:
    """JSONL + TensorBoard + progress for one run; a no-op on processes other than rank 0."""

    def __init__(self, out_dir: str | Path, enabled: bool, total_steps: int, start_step: int = 0,
                 progress: str = "auto", tensorboard: bool = True):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.total_steps = total_steps
        self.start_step = start_step
        self._file = None
        self._tb = None
        self._bar = None
        self._task = None
        self._plain_every = 0
        self._started = time.perf_counter()
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / METRICS
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= start_step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"), purge_step=start_step + 1)
            except (ImportError, ModuleNotFoundError):
                self._tb = None
        on = progress == "on" or (progress == "auto" and sys.stderr.isatty())
        if on:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("train", total=total_steps, completed=start_step, info="")
        elif progress == "auto":
            self._plain_every = max(1, total_steps // 20)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, record["step"])

    def advance(self, record: dict) -> None:
        if not self.enabled:
            return
        info = f"loss {record['loss']:.4f}  {record.get('tokens_per_s', 0):,.0f} tok/s"
        if "eval_loss" in record:
            info += f"  eval {record['eval_loss']:.4f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=record["step"], info=info)
        elif self._plain_every and (record["step"] % self._plain_every == 0 or "eval_loss" in record
                                    or record["step"] == self.total_steps):
            done = record["step"] - self.start_step
            elapsed = time.perf_counter() - self._started
            eta = elapsed / done * (self.total_steps - record["step"]) if done > 0 else 0.0
            print(f"step {record['step']}/{self.total_steps}  {info}  {elapsed:.0f} s, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)

    def close(self, plot: bool = True) -> Path | None:
        if not self.enabled:
            return None
        if self._bar is not None:
            self._bar.stop()
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()
            self._file = None
        if plot:
            return plot_loss(self.out_dir / METRICS, self.out_dir / "loss.png")
        return None
