"""``lmlab embed``: train word2vec / GloVe / fastText vectors, evaluate them, query them; the fastText classifier."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from ..errors import UsageError, closest
from .common import check_output, check_range, console, err_console, status, table

app = typer.Typer(help="Static word embeddings: word2vec, GloVe, fastText (+ classifier).", no_args_is_help=True)

MODELS = ("word2vec", "glove", "fasttext")
FORMATS = ("word2vec", "word2vec-binary", "glove")


def _sentences(corpus: str, split: str | None, lowercase: bool | None, tokenize: bool):
    """The training sentences, and says on stderr how they were normalised.

    A built-in corpus gives lmlab's shared word stream (its train split, lower-cased, word-tokenized),
    so vectors line up with the evaluation sets; a user's file is read as word2vec.c and gensim read
    it -- all of it, one sentence per line, split on whitespace, as written -- unless --split,
    --lowercase or --tokenize say otherwise."""
    from ..data import sources
    from ..data.corpus import word_sentences

    builtin = corpus in sources.SOURCES
    if not builtin and split is None and not tokenize and Path(corpus).is_file():
        from ..embeddings.word2vec import LineSentences

        err_console.print(f"{corpus}: every line, split on whitespace, "
                          + ("lower-cased" if lowercase else "as written (--lowercase to lower-case, "
                             "--tokenize for lmlab's word tokenizer)"))
        return LineSentences(corpus, lowercase=bool(lowercase))
    split = split or ("train" if builtin else "all")
    lower = True if lowercase is None and builtin else bool(lowercase)
    with status(f"loading {corpus}"):
        data = sources.load(corpus)
        docs = data.documents if split == "all" else data.split()[split]
        sentences = word_sentences(docs, lowercase=lower)
    err_console.print(f"{corpus}: {split} split, sentence-split and word-tokenized"
                      + (", lower-cased" if lower else ", case kept"))
    return sentences


@contextmanager
def _progress(name: str, epochs: int):
    """A progress bar over epochs on stderr (when it is a terminal), else nothing."""
    if not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(name, total=epochs)
        yield lambda epoch, fraction: bar.update(task, completed=epoch + fraction)


def _load_any(path: Path):
    """(Vectors, word -> vector function or None): a vectors file, or a saved model folder."""
    from ..embeddings.vectors import Vectors

    if path.is_dir():
        from ..pretrained import read_model_config

        family = read_model_config(path).get("family")
        if family == "fasttext":
            from ..embeddings.fasttext import FastText

            model = FastText.load(path)
            return model.wv, model.word_vector
        if family == "word2vec":
            from ..embeddings.word2vec import Word2Vec

            return Word2Vec.load(path).wv, None
        raise UsageError(f"{path}: a {family!r} model folder has no word vectors")
    return Vectors.load(path), None


@app.command("train")
def train(
    model: str = typer.Argument(..., help="word2vec | glove | fasttext"),
    corpus: str = typer.Argument(..., help="A built-in corpus (e.g. wiki-vital) or a text file / folder / glob."),
    out: Path = typer.Option(..., "--out", "-o", help="Vectors file to write."),
    fmt: str = typer.Option("word2vec", "--format", help="word2vec | word2vec-binary | glove"),
    save_model: Path | None = typer.Option(None, help="Also save the whole model as a folder (fastText: needed for OOV words)."),
    force: bool = typer.Option(False, "--force", help="Replace --out (and --save-model) if it exists."),
    split: str | None = typer.Option(None, help="Which documents to train on: train | valid | test | all "
                                      "(default: train for a built-in corpus, all of a file)."),
    lowercase: bool | None = typer.Option(None, "--lowercase/--keep-case",
                                          help="Lower-case (default: yes for built-in corpora, no for a file)."),
    tokenize: bool = typer.Option(False, "--tokenize", help="A file: sentence-split and word-tokenize it as the "
                                  "built-in corpora are, instead of one sentence per line split on whitespace."),
    sg: bool = typer.Option(False, "--sg/--cbow", help="Skip-gram or CBOW (word2vec, fastText)."),
    hs: bool = typer.Option(False, "--hs/--no-hs", help="Hierarchical softmax output layer."),
    negative: int = typer.Option(5, help="Negative samples (0: off; then --hs is required)."),
    size: int = typer.Option(100, help="Vector size."),
    window: int | None = typer.Option(None, help="Window (default 5; GloVe 10)."),
    min_count: int = typer.Option(5, help="Drop words seen fewer times."),
    sample: float = typer.Option(1e-3, help="Sub-sampling threshold t (0: off)."),
    alpha: float | None = typer.Option(None, help="Initial learning rate (default 0.025; GloVe eta 0.05)."),
    epochs: int | None = typer.Option(None, help="Epochs (default 5; GloVe 25)."),
    workers: int = typer.Option(2, help="Threads (Hogwild); 1 with --seed is deterministic."),
    seed: int = typer.Option(1, help="Random seed."),
    min_n: int = typer.Option(3, help="fastText: shortest character n-gram."),
    max_n: int = typer.Option(6, help="fastText: longest character n-gram."),
    bucket: int = typer.Option(2_000_000, help="fastText: hash buckets for n-grams (0: no character n-grams)."),
    x_max: float = typer.Option(100.0, help="GloVe: weighting cut-off x_max."),
    glove_output: str = typer.Option("sum", help="GloVe: sum (W + W~) | word | context."),
    evaluate: bool = typer.Option(False, "--eval", help="Evaluate the vectors afterwards (WS353, SimLex, analogies)."),
) -> None:
    """Train vectors on a corpus and write them in a word2vec / GloVe file."""
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}{closest(model, MODELS)}; choose one of {', '.join(MODELS)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}{closest(fmt, FORMATS)}; choose one of {', '.join(FORMATS)}")
    if split not in (None, "train", "valid", "test", "all"):
        raise UsageError(f"--split must be train, valid, test or all, not {split!r}")
    if model == "glove" and save_model is not None:
        raise UsageError("--save-model: GloVe has no model beyond its vectors; use --out (and --glove-output)")
    check_range("--size", size, minimum=1)
    check_range("--window", window, minimum=1)
    check_range("--min-count", min_count, minimum=1)
    check_range("--negative", negative, minimum=0, meaning="0 turns negative sampling off")
    check_range("--sample", sample, minimum=0, meaning="0 turns sub-sampling off")
    check_range("--alpha", alpha, above=0)
    check_range("--epochs", epochs, minimum=1)
    check_range("--workers", workers, minimum=1)
    check_range("--bucket", bucket, minimum=0, meaning="0 means no character n-grams")
    if model == "fasttext" and bucket > 0:
        check_range("--min-n", min_n, minimum=1)
        check_range("--max-n", max_n, minimum=min_n)
    check_range("--x-max", x_max, above=0)
    check_output(out, inputs=(corpus,), force=force)
    if save_model is not None:
        if save_model.resolve() == out.resolve():
            raise UsageError(f"--save-model {save_model} is the --out file; give them different names")
        check_output(save_model, inputs=(corpus, out), force=force, option="--save-model", folder=True)
    sentences = _sentences(corpus, split, lowercase, tokenize)
    if model == "glove":
        from ..embeddings.glove import GloVe, GloVeConfig

        cfg = GloVeConfig(vector_size=size, window=window or 10, min_count=min_count, x_max=x_max,
                          eta=0.05 if alpha is None else alpha, epochs=25 if epochs is None else epochs,
                          workers=workers, seed=seed, output=glove_output)
        trained = GloVe(cfg).fit(sentences, verbose=True)
        losses = trained.history
    else:
        if model == "word2vec":
            from ..embeddings.word2vec import Word2Vec as Model
            from ..embeddings.word2vec import Word2VecConfig

            cfg = Word2VecConfig(vector_size=size, window=window or 5, min_count=min_count, sg=sg, hs=hs,
                                 negative=negative, sample=sample, alpha=0.025 if alpha is None else alpha,
                                 epochs=5 if epochs is None else epochs,
                                 workers=workers, seed=seed)
        else:
            from ..embeddings.fasttext import FastText as Model
            from ..embeddings.fasttext import FastTextConfig

            cfg = FastTextConfig(vector_size=size, window=window or 5, min_count=min_count, sg=sg, hs=hs,
                                 negative=negative, sample=sample, alpha=0.025 if alpha is None else alpha,
                                 epochs=5 if epochs is None else epochs,
                                 workers=workers, seed=seed, min_n=min_n, max_n=max_n, bucket=bucket)
        with _progress(f"{model} {'sg' if sg else 'cbow'}", cfg.epochs) as progress:
            trained = Model(cfg).fit(sentences, verbose=True, progress=progress)
        losses = [h.loss for h in trained.history]
        if save_model is not None:
            trained.save(save_model)
    wv = trained.wv
    estimate = len(wv) * wv.dim * (4 if fmt == "word2vec-binary" else 11)  # ~11 bytes per printed float
    if estimate > 100e6:
        err_console.print(f"writing ~{estimate / 1e6:,.0f} MB of vectors to {out} ({len(wv):,} words x {wv.dim})")
    wv.save(out, fmt)
    n_words = sum(len(s) for s in sentences)
    console.print(f"{model}: {len(wv):,} words × {wv.dim} from {n_words:,} tokens in {trained.train_seconds:.1f} s; "
                  f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; wrote {out} ({fmt})"
                  + (f" and {save_model}/" if save_model else ""))
    if evaluate:
        _print_eval(wv, "add", 300000, sections=False)


def _print_eval(wv, method: str, restrict_vocab: int, sections: bool) -> None:
    from ..embeddings.evaluate import evaluate_all

    with status("evaluating"):
        report = evaluate_all(wv, method=method, restrict_vocab=restrict_vocab)
    rows = [[r.name, r.spearman, r.pearson, r.pairs, r.oov_pairs] for r in (report.ws353, report.simlex)]
    console.print(table("word similarity", ["dataset", "Spearman", "Pearson", "pairs", "OOV pairs"], rows))
    parts = report.analogy.sections if sections else []
    parts = parts + [report.analogy.semantic, report.analogy.syntactic, report.analogy.total]
    rows = [[s.section, s.accuracy, s.correct, s.total, s.oov] for s in parts]
    console.print(table(f"analogies (3Cos{'Add' if method == 'add' else 'Mul'}, top {restrict_vocab:,} words)",
                        ["section", "accuracy", "correct", "answered", "OOV (skipped)"], rows))


@app.command("eval")
def eval_vectors(
    vectors: Path = typer.Argument(..., help="A word2vec (text/binary) or GloVe file, or a saved model folder."),
    method: str = typer.Option("add", help="Analogy scoring: add (3CosAdd) | mul (3CosMul)."),
    restrict_vocab: int = typer.Option(300000, help="Answer analogies among the N most frequent words."),
    sections: bool = typer.Option(False, help="Show every analogy section."),
) -> None:
    """WordSim-353 and SimLex-999 Spearman, Google analogy accuracy (per section and total)."""
    if method not in ("add", "mul"):
        raise UsageError(f"--method must be 'add' or 'mul', not {method!r}")
    wv, _ = _load_any(vectors)
    _print_eval(wv, method, restrict_vocab, sections)


@app.command("similar")
def similar(
    word: str = typer.Argument(..., help="The query word (fastText model folders also answer OOV words)."),
    vectors: Path = typer.Option(..., "--vectors", "-v", help="Vectors file or saved model folder."),
    topn: int = typer.Option(10, help="How many neighbours."),
    restrict_vocab: int | None = typer.Option(None, help="Search the N most frequent words only."),
) -> None:
    """Nearest words by cosine similarity."""
    import numpy as np

    wv, oov_vector = _load_any(vectors)
    if word in wv:
        out = wv.most_similar(word, topn=topn, restrict_vocab=restrict_vocab)
    elif oov_vector is not None:
        v = oov_vector(word)
        limit = len(wv) if restrict_vocab is None else restrict_vocab
        scores = wv.unit[:limit] @ (v / max(float(np.linalg.norm(v)), 1e-12))
        best = np.argsort(-scores)[:topn]
        out = [(wv.words[i], float(scores[i])) for i in best]
    else:
        wv.row(word)  # raises the one-line "not in the vocabulary" error
        return
    console.print(table(f"nearest to {word!r}", ["word", "cosine"], [[w, s] for w, s in out]))


@app.command("analogy")
def analogy(
    a: str = typer.Argument(...), b: str = typer.Argument(...), c: str = typer.Argument(...),
    vectors: Path = typer.Option(..., "--vectors", "-v", help="Vectors file or saved model folder."),
    method: str = typer.Option("add", help="add (3CosAdd) | mul (3CosMul)."),
    topn: int = typer.Option(5, help="How many answers."),
    restrict_vocab: int | None = typer.Option(None, help="Answer among the N most frequent words only."),
) -> None:
    """A : B :: C : ?  (e.g. man king woman -> queen)."""
    wv, _ = _load_any(vectors)
    out = wv.analogy(a, b, c, method=method, topn=topn, restrict_vocab=restrict_vocab)
    console.print(table(f"{a} : {b} :: {c} : ?", ["word", "score"], [[w, s] for w, s in out]))


@app.command("classify")
def classify(
    corpus: str = typer.Argument("rotten-tomatoes", help="A labelled built-in corpus (documents with meta['label'])."),
    size: int = typer.Option(100, help="Embedding size."),
    word_ngrams: int = typer.Option(2, help="Word n-grams (1: bag of words; 2: + hashed bigrams)."),
    bucket: int = typer.Option(2_000_000, help="Hash buckets for word n-grams."),
    lr: float = typer.Option(0.1, help="Initial learning rate (decays linearly to 0)."),
    epochs: int = typer.Option(5, help="Epochs."),
    min_count: int = typer.Option(1, help="Drop words seen fewer times."),
    seed: int = typer.Option(1, help="Random seed."),
    predict: list[str] | None = typer.Option(None, help="Also label these texts."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Save the trained classifier in this folder."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
) -> None:
    """Train the fastText classifier on the train split; accuracy on valid and test."""
    import time

    check_range("--size", size, minimum=1)
    check_range("--word-ngrams", word_ngrams, minimum=1)
    check_range("--bucket", bucket, minimum=0, meaning="0 means no hashed word n-grams")
    check_range("--lr", lr, above=0)
    check_range("--epochs", epochs, minimum=1)
    check_range("--min-count", min_count, minimum=1)
    if out is not None:
        check_output(out, inputs=(corpus,), force=force, folder=True)
    from ..data import sources
    from ..embeddings.fasttext import ClassifierConfig, FastTextClassifier, labelled_documents
    from ..errors import DataError

    with status(f"loading {corpus}"):
        splits = sources.load(corpus).split()
        data = {name: labelled_documents(docs) for name, docs in splits.items()}
    if not data["train"][0]:
        raise DataError(f"{corpus}: no labelled documents (meta['label']) in the train split")
    t0 = time.perf_counter()
    clf = FastTextClassifier(ClassifierConfig(vector_size=size, word_ngrams=word_ngrams, bucket=bucket, alpha=lr,
                                              epochs=epochs, min_count=min_count, seed=seed))
    clf.fit(*data["train"], verbose=True)
    seconds = time.perf_counter() - t0
    rows = [[name, len(docs), clf.accuracy(docs, labels) if docs else float("nan")]
            for name, (docs, labels) in data.items()]
    console.print(table(f"fastText classifier on {corpus} ({seconds:.1f} s, labels {', '.join(clf.labels)})",
                        ["split", "documents", "accuracy"], rows))
    if out is not None:
        clf.save(out)
        console.print(f"saved the classifier to {out}/")
    if predict:
        from ..data.tokenizers.word import word_tokenize

        labels = clf.predict([word_tokenize(t, lowercase=True) for t in predict])
        console.print(table("predictions", ["text", "label"], [[t, lab] for t, lab in zip(predict, labels)]))


@app.command("contextual")
def contextual(
    model_dir: Path = typer.Argument(..., help="An ELMo folder (lmlab train's export, or options.json + weights.hdf5)."),
    sentences: list[str] = typer.Argument(..., help="One or more sentences (whitespace-tokenised)."),
    layer: str = typer.Option("mix", "--layer", help="mix (the scalar mix) | top | 0 (tokens) .. L"),
    word: str | None = typer.Option(None, "--word", help="Print the nearest tokens in context to this word "
                                                         "(its first occurrence in the first sentence having it)."),
    top: int = typer.Option(5, "--top", help="How many neighbours."),
    dims: int = typer.Option(8, "--dims", help="How many leading dimensions of each vector to print."),
    as_json: bool = typer.Option(False, "--json", help="Print every full vector as JSON."),
) -> None:
    """Contextual (ELMo) vectors of each token of the sentences, or a word's nearest tokens in context."""
    import json

    from ..recipes.elmo import contextual_vectors, load_any, nearest_in_context

    check_range("--top", top, 1)
    check_range("--dims", dims, 1)
    with status(f"loading {model_dir}"):
        model, lowercase = load_any(model_dir)
    tokens = [(s.lower() if lowercase else s).split() for s in sentences]
    if not any(tokens):
        raise UsageError("no tokens in the sentences")
    tokens = [t for t in tokens if t]
    vectors = contextual_vectors(model, tokens, layer)
    if word is not None:
        key = word.lower() if lowercase else word
        query = next(((i, t.index(key)) for i, t in enumerate(tokens) if key in t), None)
        if query is None:
            raise UsageError(f"--word {word!r} is not a token of the sentences")
        hits = nearest_in_context(vectors, tokens, query, top)
        if as_json:
            print(json.dumps([{"cosine": c, "sentence": i, "token": tokens[i][t]} for c, i, t in hits]))
            return
        console.print(table(f"nearest to {word!r} (sentence {query[0] + 1}, layer {layer})",
                            ["cosine", "token", "in context"],
                            [[f"{c:.4f}", tokens[i][t], " ".join(tokens[i][max(0, t - 4):t + 5])] for c, i, t in hits]))
        return
    if as_json:
        print(json.dumps([{"tokens": t, "vectors": v.tolist()} for t, v in zip(tokens, vectors)]))
        return
    for i, (toks, vecs) in enumerate(zip(tokens, vectors)):
        console.print(table(f"sentence {i + 1}, layer {layer}, {vecs.shape[1]} dimensions",
                            ["token", "norm", f"first {min(dims, vecs.shape[1])}"],
                            [[t, f"{float(v.norm()):.3f}", " ".join(f"{x:+.3f}" for x in v[:dims].tolist())]
                             for t, v in zip(toks, vecs)]))
