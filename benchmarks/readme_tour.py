"""Run the README's CLI tour as a new user would, one command after another, and time each.

    python benchmarks/readme_tour.py                       # every tour command, in a fresh temp folder
    python benchmarks/readme_tour.py --only "ngram " --timeout 600 --out benchmarks/results/readme_tour.md

The commands are the ``lmlab ...`` lines of the README's fenced blocks (``torchrun ... -m lmlab``
lines are run as ``lmlab`` on one process), in order, in one temporary folder, so a later command
finds what an earlier one wrote (``mkn5.arpa``, ``runs/lstm``...). ``tests/faults/test_readme_tour.py``
uses :func:`tour_commands` to check that every line is a valid invocation of the current CLI.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tour_commands(readme: str) -> list[tuple[int, list[str]]]:
    """(line number, argv after ``lmlab``) for every command line of the README's code blocks."""
    commands = []
    in_block = False
    for number, line in enumerate(readme.splitlines(), start=1):
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        words = shlex.split(line, comments=True)
        if "lmlab" not in words or (words[0] != "lmlab" and words[0] != "torchrun"):
            continue
        commands.append((number, words[words.index("lmlab") + 1:]))
    return commands


def stand_ins(workdir: Path) -> None:
    """The user's own files the tour names (``train.txt``, ``my_texts/``, ``reviews.csv``), made from wiki-vital's
    train split so that those lines run too; the tour's other placeholders (an HF folder,
    ``old-run/``) are left missing and fail with their one-line error. ``reviews.csv`` is
    rotten-tomatoes' labelled snippets, written with the column names the tour uses."""
    import csv

    from lmlab.data import sources

    docs = sources.load("wiki-vital").split().train
    (workdir / "train.txt").write_text("".join(d.text.replace("\n", " ") + "\n" for d in docs), encoding="utf-8")
    folder = workdir / "my_texts"
    folder.mkdir(exist_ok=True)
    for part in range(3):
        chunk = docs[part * 200:(part + 1) * 200]
        (folder / f"part{part}.txt").write_text("\n\n".join(d.text for d in chunk) + "\n", encoding="utf-8")
    with open(workdir / "reviews.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for doc in sources.load("rotten-tomatoes").documents:
            if doc.meta.get("label"):
                writer.writerow([doc.text, doc.meta["label"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only commands whose text contains this")
    parser.add_argument("--from-line", type=int, default=0,
                        help="skip the commands above this README line (resume a tour in the same --workdir)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    parser.add_argument("--workdir", default=None, help="folder to run in (default: a fresh temp folder)")
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lmlab-tour-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    stand_ins(workdir)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    rows = []
    for number, argv in tour_commands((ROOT / "README.md").read_text(encoding="utf-8")):
        text = "lmlab " + shlex.join(argv)
        if (args.only and args.only not in text) or number < args.from_line:
            continue
        argv = [a.replace("configs/", str(ROOT / "configs") + "/") if a.startswith("configs/") else a for a in argv]
        start, started_at = time.perf_counter(), time.time()
        try:
            done = subprocess.run([sys.executable, "-m", "lmlab", *argv], cwd=workdir, env=env,
                                  capture_output=True, text=True, timeout=args.timeout)
            code, tail = done.returncode, (done.stderr.strip().splitlines() or [""])[-1]
        except subprocess.TimeoutExpired:
            code, tail = "timeout", f"still running after {args.timeout:.0f} s"
        seconds = time.perf_counter() - start
        rows.append(f"| {number} | `{text}` | {seconds:.1f} | {code} | {re.sub(r'[|`]', ' ', tail)[:120]} |")
        print(rows[-1], flush=True)
        print(f"# line {number}: started {started_at:.1f}, ended {time.time():.1f} (epoch seconds)", flush=True)
    load = os.getloadavg()
    table = "\n".join([
        f"README tour in {workdir} (load average {load[0]:.1f} at the end; shared 2-core machine)", "",
        "| README line | command | seconds | exit | last stderr line |", "|---|---|---|---|---|", *rows])
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
