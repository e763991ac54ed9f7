"""Peak memory of word2vec training, lmlab against gensim, on one text file (issue 20).

    python benchmarks/word2vec_memory.py --words 12000000 --rounds 1 --out benchmarks/results/word2vec_memory.md

The file is one sentence per line, lower-cased and word-tokenized, built from all the distinct
text of the built-in corpora that have running text (wiki-vital, peoples-daily -- segmented
Chinese --, rotten-tomatoes' snippets and plots); these hold ~1.7M words, so reaching 12M words
repeats that text (said in the output). Repetition does not change what is measured: both
tools stream the file, and what each holds is its vocabulary, its weights and (lmlab) the
corpus as int32 ids.

Each run is a fresh process (lmlab: ``lmlab embed train word2vec FILE``; gensim:
``Word2Vec(corpus_file=None, sentences=LineSentence(FILE))``), skip-gram, 2 workers, 1 epoch,
otherwise gensim's defaults; its peak RSS is the kernel's ``ru_maxrss`` of that child (``os.wait4``).
lmlab and gensim alternate (ABAB), and the median of the rounds is reported, next to the RSS of a
process that only imports the same libraries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child reports its own high-water mark (VmHWM, reset at exec) when it exits: ru_maxrss from
# wait4 would not do, Linux carries the parent's RSS at fork into the child's maximum.
WRAP = ("import atexit, runpy, sys\n"
        "report = sys.argv[1]\n"
        "def hwm():\n"
        "    with open('/proc/self/status') as s, open(report, 'w') as out:\n"
        "        out.write(next(line for line in s if line.startswith('VmHWM')).split()[1])\n"
        "atexit.register(hwm)\n"
        "if sys.argv[2] == '-m':\n"
        "    sys.argv = [sys.argv[3], *sys.argv[4:]]\n"
        "    runpy.run_module(sys.argv[0], run_name='__main__')\n"
        "else:\n"
        "    code = sys.argv[3]\n"
        "    sys.argv = ['-c', *sys.argv[4:]]\n"
        "    exec(compile(code, '<benchmark>', 'exec'))\n")

LMLAB = ["-m", "lmlab", "embed", "train", "word2vec", "{file}", "-o", "{out}", "--sg", "--epochs", "1",
         "--workers", "2", "--force"]
GENSIM = ["-c", "import sys; from gensim.models import Word2Vec; from gensim.models.word2vec import LineSentence; "
                "Word2Vec(LineSentence(sys.argv[1]), sg=1, workers=2, epochs=1, seed=1)", "{file}"]
IMPORT_LMLAB = ["-c", "import numpy, numba, lmlab.embeddings.word2vec, lmlab.cli.embed"]
IMPORT_GENSIM = ["-c", "import gensim.models.word2vec"]


def corpus_file(path: Path, words: int) -> tuple[int, int]:
    """Write ``words`` words to ``path``; (distinct words available, times the text was repeated)."""
    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences

    lines = []
    for name in ("wiki-vital", "peoples-daily", "rotten-tomatoes"):
        lines += [" ".join(s) for s in word_sentences(sources.load(name).documents) if s]
    distinct = sum(len(line.split()) for line in lines)
    written = rounds = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < words:
            rounds += 1
            for line in lines:
                handle.write(line + "\n")
                written += len(line.split())
                if written >= words:
                    break
    return distinct, rounds


def peak_rss_mb(argv: list[str], env: dict) -> float:
    """Run ``python ARGV`` (``-m MODULE ...`` or ``-c CODE ...``) and return its peak resident set in MB."""
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as report:
        done = subprocess.run([sys.executable, "-c", WRAP, report.name, *argv], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{argv[:4]} failed: {done.stderr[-800:]}")
        return int(report.read()) / 1024  # kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=12_000_000)
    parser.add_argument("--rounds", type=int, default=1, help="ABAB rounds (median reported)")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        distinct, repeats = corpus_file(text, args.words)
        fill = {"{file}": str(text), "{out}": str(Path(tmp) / "v.txt")}
        base = {"lmlab": peak_rss_mb(IMPORT_LMLAB, env), "gensim": peak_rss_mb(IMPORT_GENSIM, env)}
        peaks: dict[str, list[float]] = {"lmlab": [], "gensim": []}
        for _ in range(args.rounds):
            peaks["lmlab"].append(peak_rss_mb([fill.get(a, a) for a in LMLAB], env))
            peaks["gensim"].append(peak_rss_mb([fill.get(a, a) for a in GENSIM], env))
    lm, gs = (statistics.median(peaks[k]) for k in ("lmlab", "gensim"))
    load = os.getloadavg()[0]
    table = "\n".join([
        f"word2vec peak RSS, {args.words:,} words (skip-gram, 2 workers, 1 epoch, min_count 5; {distinct:,} words of distinct "
        f"text, written {repeats}x to reach the size); shared 2-core machine, load average {load:.1f}", "",
        "| tool | peak RSS (MB, median of rounds) | imports alone (MB) | training adds (MB) | rounds |",
        "|---|---|---|---|---|",
        f"| lmlab | {lm:.0f} | {base['lmlab']:.0f} | {lm - base['lmlab']:.0f} | {', '.join(f'{p:.0f}' for p in peaks['lmlab'])} |",
        f"| gensim | {gs:.0f} | {base['gensim']:.0f} | {gs - base['gensim']:.0f} | {', '.join(f'{p:.0f}' for p in peaks['gensim'])} |",
        "", f"lmlab / gensim: {lm / gs:.2f}x peak, {(lm - base['lmlab']) / max(gs - base['gensim'], 1):.2f}x "
        "beyond the imports", "",
        f"Command: `python benchmarks/word2vec_memory.py --words {args.words} --rounds {args.rounds}`"])
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
