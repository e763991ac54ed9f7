"""Train skip-gram word2vec on real text, save the vectors in word2vec's text format, and ask analogies.

    python examples/word2vec_analogy.py            # wiki-vital, 5 epochs
    python examples/word2vec_analogy.py --small    # wiki-vital-small, 1 epoch (the smoke test)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lmlab.data import sources
from lmlab.data.corpus import word_sentences
from lmlab.embeddings.vectors import Vectors
from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig


def main(small: bool = False) -> Vectors:
    corpus = sources.load("wiki-vital-small" if small else "wiki-vital")
    sentences = word_sentences(corpus.split().train)
    config = Word2VecConfig(vector_size=50 if small else 100, sg=True, min_count=3, epochs=1 if small else 5,
                            workers=2)
    model = Word2Vec(config).fit(sentences)
    with tempfile.TemporaryDirectory() as tmp:
        path = model.wv.save(Path(tmp) / "vectors.txt", fmt="word2vec")   # gensim / word2vec.c text format
        vectors = Vectors.load(path)
    print(f"{len(vectors):,} words x {vectors.dim} dimensions from {sum(map(len, sentences)):,} tokens")
    for word in ("king", "france", "water"):
        if word in vectors:
            print(f"nearest to {word!r}:", ", ".join(w for w, _ in vectors.most_similar(word, topn=5)))
    if all(w in vectors for w in ("man", "king", "woman")):
        print("man : king :: woman :", vectors.analogy("man", "king", "woman", topn=3))
    return vectors


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a small corpus and one epoch, for a quick check")
    main(parser.parse_args().small)
