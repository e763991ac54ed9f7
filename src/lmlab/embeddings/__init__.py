"""Static word embeddings: word2vec (CBOW / skip-gram × negative sampling / hierarchical softmax),
GloVe, fastText subword vectors and the fastText classifier; vector files and intrinsic evaluation.

Each model file holds its API and orchestration (``word2vec.py``, ``glove.py``, ``fasttext.py``);
the compiled inner loops live in ``_kernels.py``; ``vectors.py`` is the trained table (neighbours,
analogies, word2vec / GloVe files) and ``evaluate.py`` the analogy and similarity benchmarks.
Imports are lazy so that ``import lmlab.embeddings`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Word2Vec": "word2vec", "Word2VecConfig": "word2vec",
    "GloVe": "glove", "GloVeConfig": "glove",
    "FastText": "fasttext", "FastTextConfig": "fasttext",
    "FastTextClassifier": "fasttext", "ClassifierConfig": "fasttext",
    "Vectors": "vectors",
    "evaluate_all": "evaluate", "evaluate_analogies": "evaluate", "evaluate_similarity": "evaluate",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
