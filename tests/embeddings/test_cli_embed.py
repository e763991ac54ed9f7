"""``lmlab embed``: train, query and evaluate from the command line, as a user would."""

from __future__ import annotations

from lmlab.embeddings.vectors import Vectors


def test_embed_train_similar_analogy_eval(cli, tmp_path, wiki_small_splits):
    from lmlab.data.corpus import word_sentences

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in word_sentences(wiki_small_splits.train)[:1500]) + "\n")
    out = tmp_path / "v.bin"
    run = cli("embed", "train", "word2vec", str(corpus), "--out", str(out), "--format", "word2vec-binary",
              "--sg", "--epochs", "2", "--size", "32", "--min-count", "3", "--split", "all", "--workers", "1")
    assert run.returncode == 0, run.stderr
    assert "epoch 2/2" in run.stderr and "wrote" in run.stdout
    wv = Vectors.load(out)
    assert wv.dim == 32 and "the" in wv
    run = cli("embed", "similar", "the", "-v", str(out), "--topn", "3")
    assert run.returncode == 0, run.stderr
    assert "nearest to 'the'" in run.stdout
    run = cli("embed", "analogy", "zzzunknown", "the", "of", "-v", str(out))
    assert run.returncode == 2
    assert run.stderr.startswith("lmlab: error: word 'zzzunknown' is not in the vocabulary")
    run = cli("embed", "eval", str(out), "--method", "mul")
    assert run.returncode == 0, run.stderr
    assert "ws353" in run.stdout and "total" in run.stdout


def test_embed_rejects_bad_arguments(cli, tmp_path):
    run = cli("embed", "train", "word3vec", "x.txt", "--out", str(tmp_path / "v.txt"))
    assert run.returncode == 2 and "did you mean 'word2vec'" in run.stderr
    run = cli("embed", "eval", str(tmp_path / "missing.txt"))
    assert run.returncode == 2 and "vectors file not found" in run.stderr
