"""Records from benchmark scripts: ``--record DIR`` writes what a script printed as one lmlab record.

A benchmark script (``benchmarks/*.py``) adds two lines::

    parser.add_argument("--record", default="", help="write an lmlab.report record of the results into this folder")
    ...
    args = parser.parse_args()
    if args.record: record_at_exit(args.record, __file__)

:func:`record_at_exit` copies everything the script prints to standard output (the script's output
is unchanged) and, when the script ends, reads its numbers back out of that text: every JSON object
printed (numeric fields, nested ones as ``outer.inner``) and every Markdown table (``row | column``
for each cell that is a number, units such as ``s``, ``MB``, ``x``, ``%`` and thousands separators
stripped). They become the metrics of one :class:`~lmlab.report.records.Record` (group
``benchmark``) with the command line, wall seconds, machine, lmlab version and git commit, written
to ``DIR/<script>-<UTC time>.json``; ``lmlab report DIR`` reads it. A script that printed no number
writes no record.

Training FLOPs of a benchmark are not known from its output;
:func:`lmlab.report.records.transformer_train_flops` (re-exported here) is the stated formula
(6·N·D) that records use where the parameter count N and the training tokens D are.
"""

from __future__ import annotations

import atexit
import io
import json
import re
import sys
import time
from pathlib import Path

from .records import FLOPS_6ND, Record, git_commit, machine, transformer_train_flops

NUMBER = re.compile(r"^\**([-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?)\s*(?:x|s|ms|MB|GB|%|tok/s|\*\*)*\**$", re.IGNORECASE)


def _number(cell: str) -> float | None:
    found = NUMBER.match(cell.strip().replace("`", ""))
    return float(found.group(1).replace(",", "")) if found else None


def _flatten(value, prefix: str, out: dict) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)


def metrics_from_text(text: str) -> dict[str, float]:
    """The numbers in a benchmark's printed output: JSON objects and Markdown tables (see the module docstring)."""
    metrics: dict[str, float] = {}
    decoder = json.JSONDecoder()
    at = 0
    while (start := text.find("{", at)) >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        _flatten(value, "", metrics)
        at = end
    header: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            for column, cell in zip(header[1:], cells[1:]):
                value = _number(cell)
                if value is not None:
                    metrics[f"{cells[0].replace('`', '')} | {column}"] = value
    return metrics


class _Tee(io.TextIOBase):
    def __init__(self, stream) -> None:
        self.stream, self.parts = stream, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def record_at_exit(folder: str | Path, script: str, family: str = "benchmark"):
    """Copy standard output from now on; when the process ends, write its numbers as one record in ``folder``.

    Returns the writer (registered with :mod:`atexit`; a test may call it and unregister it)."""
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    began, argv = time.monotonic(), list(sys.argv)

    def write() -> None:
        from .. import __version__
        from ..io import atomic_write_text

        metrics = metrics_from_text("".join(tee.parts))
        if not metrics:
            return
        name = Path(script).stem
        record = Record(model=f"benchmarks/{name}.py", family=family, metrics=metrics, group="benchmark",
                        train_seconds=time.monotonic() - began, machine=machine(), lmlab_version=__version__,
                        git_commit=git_commit(Path(script).resolve().parent), config={"argv": argv[1:]},
                        notes="python " + " ".join([f"benchmarks/{name}.py", *argv[1:]]))
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json", record.to_json())

    atexit.register(write)
    return write


__all__ = ["FLOPS_6ND", "metrics_from_text", "record_at_exit", "transformer_train_flops"]
