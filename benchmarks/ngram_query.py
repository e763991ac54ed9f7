"""Binary load + query: ``lmlab ngram eval MODEL.lmbin TEXT`` vs KenLM ``query -v summary`` on its probing file;
ARPA load: ``lmlab ngram eval MODEL.arpa`` vs ``query MODEL.arpa`` on a one-line text.

    LMLAB_BENCH_CACHE=<dir> .venv/bin/python benchmarks/ngram_query.py [--million 3] [--rounds 5]
        [--arpa-rounds 2] [--order 5] [--out benchmarks/results/ngram_query.md]

The model: an MKN n-gram (default 5) estimated by lmplz from the first ``--million`` M words of
benchmarks/ngram_scale.py's corpus, written once into the cache folder, then made binary by both
tools (``lmlab ngram binarize --structure trie`` and ``--structure probing`` -> two .lmbin files;
``build_binary probing``). The query text is the same prefix (every token is scored; both report
the same perplexity, checked). Then ``--rounds`` rounds, each one fresh ``lmlab`` process per
lmlab file then one fresh ``query`` process (ABCABC, one at a time, under GNU time): the median
wall, CPU and peak RSS of each. lmlab's figure includes the CLI's start-up (Python, typer); an
in-process breakdown (load, reading and encoding the text, scoring) is printed too. The ARPA
rounds (``--arpa-rounds``, 0 to skip) alternate the same way, each tool reading the ARPA file and
scoring one short line: the cost is the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ngram_scale import PY, corpus, measured, prefix  # noqa: E402


def breakdown(model: Path, text: Path) -> str:
    """lmlab in this process: seconds and peak RSS after the imports, mapping the model, scoring the text."""
    import resource

    clock = []

    def tick():
        clock.append((time.perf_counter(), time.process_time()))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if len(clock) == 1:
            return ""
        (w0, c0), (w1, c1) = clock[-2], clock[-1]
        return f"{w1 - w0:.2f} s wall / {c1 - c0:.2f} s CPU (peak RSS then {rss:.0f} MB)"

    tick()
    import numpy  # noqa: F401

    from lmlab.ngram import load_model
    imported = tick()
    m = load_model(model)
    m.evaluate_text(b"a b\n")  # (the kernels: the ahead-of-time module, or numba's JIT from its cache)
    loaded = tick()
    ev = m.evaluate_text(text.read_bytes())
    scored = tick()
    how = ("kernels compiled ahead of time, numba not imported" if "numba" not in sys.modules
           else "numba imported (no usable ahead-of-time module: `python -m lmlab.aot`)")
    return (f"in-process: import numpy + lmlab.ngram {imported}; map the model + load the kernels {loaded} ({how}); "
            f"read, encode and score the text {scored} ({ev.tokens / 1e6:.2f} M tokens); "
            f"perplexity {ev.perplexity:.6f}")


def main() -> None:
    from ngram_bench import CACHE, build_lmplz

    ap = argparse.ArgumentParser()
    ap.add_argument("--million", type=float, default=3.0)
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--arpa-rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--record", default="", help="write an lmlab.report record of the printed results into this folder")
    args = ap.parse_args()
    if args.record:  # the printed numbers as one lmlab record
        from lmlab.report.bench import record_at_exit
        record_at_exit(args.record, __file__)
    lmplz, note = build_lmplz()
    if lmplz is None:
        sys.exit(note)
    bindir = lmplz.parent
    if not ((bindir / "build_binary").exists() and (bindir / "query").exists()):  # (build_lmplz makes lmplz only)
        subprocess.run(["make", "-j2", "build_binary", "query"], cwd=bindir.parent, check=True, capture_output=True)
    cache = Path(CACHE)
    train, _, what = corpus(cache)
    work = cache / f"query_{args.million}_{args.order}"
    work.mkdir(exist_ok=True)
    text, words = prefix(train, args.million, work)
    arpa, probing = work / "m.arpa", work / "m.probing"
    lmbins = {structure: work / f"m.{structure}.lmbin" for structure in ("trie", "probing")}
    if not arpa.exists():
        subprocess.run([str(lmplz), "-o", str(args.order), "-S", "2G", "-T", str(work) + "/", "--text", str(text),
                        "--arpa", str(arpa)], check=True, capture_output=True)
    for structure, lmbin in lmbins.items():
        if not lmbin.exists():
            subprocess.run([PY, "-m", "lmlab", "ngram", "binarize", "--structure", structure, str(arpa), str(lmbin)],
                           check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    if not probing.exists():
        subprocess.run([str(bindir / "build_binary"), "probing", str(arpa), str(probing)], check=True, capture_output=True)
    ours: dict[str, list] = {structure: [] for structure in lmbins}
    theirs = []
    for _ in range(args.rounds):  # (one process at a time: lmlab's trie, lmlab's probing, KenLM's probing)
        for structure, lmbin in lmbins.items():
            ours[structure].append(measured([PY, "-m", "lmlab", "ngram", "eval", str(lmbin), str(text)]))
        theirs.append(measured([str(bindir / "query"), "-v", "summary", str(probing)], stdin=str(text)))
    one = work / "one_line.txt"
    one.write_text("the first line of text\n")
    arpa_ours, arpa_theirs = [], []
    for _ in range(args.arpa_rounds):
        arpa_ours.append(measured([PY, "-m", "lmlab", "ngram", "eval", str(arpa), str(one)]))
        arpa_theirs.append(measured([str(bindir / "query"), "-v", "summary", str(arpa)], stdin=str(one)))
    import re

    ppl_ours = float(re.search(r"Perplexity including OOVs:\s+(\S+)", ours["probing"][-1]["out"]).group(1))
    ppl_trie = float(re.search(r"Perplexity including OOVs:\s+(\S+)", ours["trie"][-1]["out"]).group(1))
    ppl_theirs = float(re.search(r"Perplexity including OOVs:\s+(\S+)", theirs[-1]["out"]).group(1))

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    load = os.getloadavg()
    lines = [
        f"# Binary load + query: lmlab vs KenLM ({args.order}-gram of {words / 1e6:.2f}M words)", "",
        f"Command: `LMLAB_BENCH_CACHE=<dir> .venv/bin/python benchmarks/ngram_query.py --million {args.million} "
        f"--order {args.order} --rounds {args.rounds} --arpa-rounds {args.arpa_rounds}`", "",
        f"Corpus: {what} (prefix; the query text is the same prefix). {args.rounds} rounds, lmlab and KenLM "
        f"alternating, one fresh process each, medians. Load average at the end: "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (2 cores).", "",
        "| what | wall | CPU | peak RSS | file |", "|---|---:|---:|---:|---:|",
    ]
    for structure, lmbin in lmbins.items():
        runs = ours[structure]
        lines += [
            f"| `lmlab ngram eval m.{structure}.lmbin` | {med(runs, 'wall'):.2f} s | {med(runs, 'cpu'):.2f} s | "
            f"{med(runs, 'rss'):.0f} MB | {lmbin.stat().st_size / 1e6:.0f} MB |",
            f"| ratio lmlab {structure} / KenLM probing | {med(runs, 'wall') / med(theirs, 'wall'):.2f}x | "
            f"{med(runs, 'cpu') / med(theirs, 'cpu'):.2f}x | {med(runs, 'rss') / med(theirs, 'rss'):.2f}x | "
            f"{lmbin.stat().st_size / probing.stat().st_size:.2f}x |"]
    lines += [
        f"| KenLM `query -v summary m.probing` | {med(theirs, 'wall'):.2f} s | {med(theirs, 'cpu'):.2f} s | "
        f"{med(theirs, 'rss'):.0f} MB | {probing.stat().st_size / 1e6:.0f} MB |", "",
        f"Perplexity: lmlab {ppl_ours:.6f} (probing), {ppl_trie:.6f} (trie), KenLM {ppl_theirs:.6f} "
        f"(rel. diff {abs(ppl_ours - ppl_theirs) / ppl_theirs:.1e}).", "",
        f"m.probing.lmbin, {breakdown(lmbins['probing'], text)}",
    ]
    if args.arpa_rounds:
        lines += [
            "", f"## ARPA load ({arpa.stat().st_size / 1e6:.0f} MB file; one line scored), "
                f"{args.arpa_rounds} alternating rounds, medians", "",
            "| what | wall | CPU | peak RSS |", "|---|---:|---:|---:|",
            f"| `lmlab ngram eval m.arpa` | {med(arpa_ours, 'wall'):.2f} s | {med(arpa_ours, 'cpu'):.2f} s | "
            f"{med(arpa_ours, 'rss'):.0f} MB |",
            f"| KenLM `query m.arpa` | {med(arpa_theirs, 'wall'):.2f} s | {med(arpa_theirs, 'cpu'):.2f} s | "
            f"{med(arpa_theirs, 'rss'):.0f} MB |",
            f"| ratio lmlab / KenLM | {med(arpa_ours, 'wall') / med(arpa_theirs, 'wall'):.2f}x | "
            f"{med(arpa_ours, 'cpu') / med(arpa_theirs, 'cpu'):.2f}x | "
            f"{med(arpa_ours, 'rss') / med(arpa_theirs, 'rss'):.2f}x |",
        ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
