"""Forward, backward and mean per-word perplexity of a saved ELMo biLM on a split of a corpus
(the shared word-level stream: </s> counted, <s> not, OOV as <unk>).

    .venv/bin/python benchmarks/elmo_ppl.py runs/elmo/model --corpus wiki-vital --split test
"""

from __future__ import annotations

import argparse
import json

from lmlab.data import sources
from lmlab.data.corpus import word_sentences
from lmlab.models import elmo
from lmlab.recipes.elmo import perplexities


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--corpus", default="wiki-vital")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    model, vocab = elmo.load(args.model)
    sentences = word_sentences(sources.load(args.corpus).split()[args.split])
    result = perplexities(model, sentences, vocab)
    print(json.dumps({k: {"ppl": round(v.perplexity, 2), "tokens": v.tokens, "oov": v.oov} for k, v in result.items()}))


if __name__ == "__main__":
    main()
