"""Run every side-by-side benchmark in this folder, then rebuild BENCHMARKS.md.

Each ``*_bench.py`` script runs lmlab and its peer in one go on the same data and
machine, and writes its section to ``benchmarks/results/<name>.md`` (the numbers
and the command that produced them). This script runs them one after another
(never in parallel: they time each other) and concatenates the sections.

    python benchmarks/run_all.py            # run all, then assemble
    python benchmarks/run_all.py --assemble # only rebuild BENCHMARKS.md from results/
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = """# Benchmarks

Side-by-side measurements of lmlab against the peer tools, run in one go on the
same corpus and machine (2 CPU cores, no GPU), reported as ratios. Each section
names the script and command that produced it; `make bench` reruns them all.
Timings taken while other work shared the machine are marked as such in their section.

"""


ORDER = ["summary", "ngram", "embeddings", "neural_lm", "training", "gpt", "bert"]  # the lineage


def assemble() -> Path:
    files = sorted((HERE / "results").glob("*.md"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    sections = [p.read_text() for p in files]
    out = HERE.parent / "BENCHMARKS.md"
    out.write_text(HEADER + "\n\n".join(s.strip() for s in sections) + "\n")
    return out


def main() -> None:
    if "--assemble" not in sys.argv:
        for script in sorted(HERE.glob("*_bench.py")):
            print(f"== {script.name}", flush=True)
            subprocess.run([sys.executable, str(script)], check=False)
    print(f"wrote {assemble()}")


if __name__ == "__main__":
    main()
