"""Build a Kneser-Ney n-gram LM on real text, save it as ARPA (KenLM's format), load it back and score.

    python examples/ngram_build_and_score.py            # wiki-vital-small, 3-gram
    python examples/ngram_build_and_score.py --small    # a 200-document slice (the smoke test)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import lmlab
from lmlab.data import sources
from lmlab.data.corpus import word_sentences
from lmlab.data.vocab import closed_vocabulary
from lmlab.ngram import build, write_arpa


def main(small: bool = False) -> float:
    splits = sources.load("wiki-vital-small").split()
    train_docs = splits.train[:200] if small else splits.train
    train, test = word_sentences(train_docs), word_sentences(splits.test[:50])
    vocab = closed_vocabulary(train, min_count=2)          # the rest of the words are <unk>
    model = build(train, order=3, smoothing="mkn", vocab=vocab)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wiki.3.arpa"
        write_arpa(model, path)
        model = lmlab.load(path)                           # an ARPA file loads like any saved model
    ev = model.evaluate(test)
    print(f"MKN 3-gram on {len(train):,} sentences, |V| = {len(vocab):,}")
    print(f"test perplexity {ev.perplexity:.1f} (incl. OOVs; {ev.oovs} OOV of {ev.tokens} tokens, </s> counted)")
    log_probs = model.next_logprobs(["of", "the"])                      # log10 P(w | of the), every w
    best = np.argsort(-log_probs)[:5]
    print("most likely after 'of the':", ", ".join(model.vocab.words[i] for i in best))
    return ev.perplexity


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a small slice, for a quick check")
    main(parser.parse_args().small)
