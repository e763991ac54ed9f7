"""Why is the OOV rate so high? A diagnosis for ``eval`` when model and test text disagree.

A model built from a user's raw file (case kept, "Europe." one token) and scored on lmlab's
normalised word stream (lower-cased, punctuation split off), or the other way round, meets
mostly unknown words and reports a perplexity that is wrong for the reason, not the model.
:func:`diagnose_oov` looks at the unknown test tokens and the model's vocabulary and names the
likely mismatch, so ``eval`` can warn instead of printing a silent wrong number.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

PUNCT = set(".,;:!?\"'()[]{}")
HIGH_OOV = 0.05  # above this OOV rate the diagnosis runs (lmlab's own streams sit near 1-3 %)


def diagnose_oov(vocabulary: Collection[str], tokens: Iterable[str], trained: float | None = None) -> str | None:
    """One sentence naming the likely normalisation mismatch, or None when the OOV rate is ordinary.

    ``vocabulary`` is the model's words (``<s>``, ``</s>``, ``<unk>`` may be in it), ``tokens`` the
    test tokens as the model saw them. ``trained``: the OOV rate the model met in training, where
    it is known (a closed-vocabulary LM records it); the rate is then "high" only above
    ``max(HIGH_OOV, 2 * trained)``, so a 10k-word LSTM that saw 6 % unknown words in training is not
    warned about 7 % on test."""
    total = oov = case_hits = punct_hits = 0
    for token in tokens:
        total += 1
        if token in vocabulary:
            continue
        oov += 1
        if token.lower() in vocabulary or token.capitalize() in vocabulary or token.upper() in vocabulary:
            case_hits += 1
        elif len(token) > 1 and (token[-1] in PUNCT or token[0] in PUNCT) and token.strip("".join(PUNCT)) in vocabulary:
            punct_hits += 1
    if total == 0 or oov / total <= max(HIGH_OOV, 2 * (trained or 0.0)):
        return None
    words = [w for w in vocabulary if w not in ("<s>", "</s>", "<unk>")]
    upper = sum(1 for w in words if w[:1].isupper())
    glued_words = [w for w in words if len(w) > 1 and w[-1] in PUNCT and w[:-1].isalpha()]
    glued = len(glued_words)
    causes = []
    if case_hits / oov >= 0.2:
        kept = "keeps case" if upper else "is lower-cased"
        causes.append(f"{case_hits / oov:.0%} of the unknown tokens are in the vocabulary with another case "
                      f"(the model {kept})")
    if punct_hits / oov >= 0.1 or (words and glued / len(words) >= 0.02):
        causes.append(f"{glued:,} vocabulary words carry punctuation (e.g. {min(glued_words or [''])!r}), so the model was built "
                      "from untokenized text" if glued else
                      f"{punct_hits / oov:.0%} of the unknown tokens carry punctuation the model's text split off")
    message = f"{oov / total:.1%} of the test tokens are out of the model's vocabulary"
    if trained is not None:
        message += f" ({trained:.1%} in training)"
    if causes:
        return (message + "; " + "; ".join(causes) + ": build and evaluate on text normalised the same way "
                "(--lowercase / --tokenize)")
    return message + " (a different domain or language than the training text?)"
