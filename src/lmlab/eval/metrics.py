"""Task metrics.

Each section is one kind of task; the implementations are plain Python over token lists and strings,
tested equal to the reference tool named in the section.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from ..errors import UsageError

# --- sequence-to-sequence ----------------------------------------------------------------------------
#
# corpus_bleu   BLEU (Papineni et al., 2002) exactly as sacreBLEU 2.x computes it by default: the 13a
#               tokenizer (mteval-v13a), n = 1..4, clipped counts summed over the corpus, brevity
#               penalty exp(1 - r/c) when c < r, "exp" smoothing (the k-th zero precision becomes
#               100 / (2^k · total)); one reference per hypothesis. Tested equal to ``sacrebleu.corpus_bleu``.
# corpus_chrf   chrF (Popović, 2015) as sacreBLEU's default CHRF: character n-grams n = 1..6 with the
#               white space removed, statistics summed over the corpus, precision and recall averaged
#               over the orders that have n-grams, F_β with β = 2. Tested equal to ``sacrebleu.corpus_chrf``.
# rouge_scores  ROUGE-1, ROUGE-2 and ROUGE-L (Lin, 2004) F-measures averaged over the pairs, as Google's
#               ``rouge-score`` package (no stemming): lowercase, every non-[a-z0-9] character a space,
#               ROUGE-L from the longest common subsequence. Tested equal to ``rouge_score.RougeScorer``.
# g2p_error_rates  PER = Σ Levenshtein(hyp, ref) / Σ |ref| over phoneme sequences, and WER = the fraction of
#               words whose pronunciation has any error (the grapheme-to-phoneme convention, e.g.
#               Yao & Zweig, 2015); both in percent.


def tokenize_13a(line: str) -> str:
    """sacreBLEU's default ``13a`` tokenization of one line (tokens separated by single spaces)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    line = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", line)
    line = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", line)
    line = re.sub(r"([\.,])([^0-9])", r" \1 \2", line)
    line = re.sub(r"([0-9])(-)", r"\1 \2 ", line)
    return " ".join(line.split())


def _ngrams(tokens: Sequence, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _check_pairs(hypotheses: Sequence, references: Sequence, what: str) -> None:
    if len(hypotheses) != len(references):
        raise UsageError(f"{what}: {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise UsageError(f"{what}: no hypotheses to score")


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], max_order: int = 4) -> float:
    """Corpus BLEU in [0, 100] of detokenized hypothesis strings against one reference string each."""
    _check_pairs(hypotheses, references, "BLEU")
    correct, total = [0] * max_order, [0] * max_order
    sys_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = tokenize_13a(hyp).split(), tokenize_13a(ref).split()
        sys_len += len(h)
        ref_len += len(r)
        for n in range(1, max_order + 1):
            hyp_counts, ref_counts = _ngrams(h, n), _ngrams(r, n)
            correct[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            total[n - 1] += max(0, len(h) - n + 1)
    precisions = [0.0] * max_order
    smooth = 1.0
    for n in range(max_order):
        if total[n] == 0:
            break
        if correct[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    log_sum = sum(math.log(p) if p > 0 else -9999999999 for p in precisions)
    return bp * math.exp(log_sum / max_order)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str], char_order: int = 6,
                beta: float = 2.0) -> float:
    """Corpus chrF in [0, 100] (character n-grams, white space ignored), one reference per hypothesis."""
    _check_pairs(hypotheses, references, "chrF")
    stats = [[0, 0, 0] for _ in range(char_order)]  # per order: hypothesis n-grams, reference n-grams, matches
    for hyp, ref in zip(hypotheses, references):
        h, r = "".join(hyp.split()), "".join(ref.split())
        for n in range(1, char_order + 1):
            hyp_counts, ref_counts = _ngrams(h, n), _ngrams(r, n)
            stats[n - 1][0] += sum(hyp_counts.values())
            stats[n - 1][1] += sum(ref_counts.values())
            stats[n - 1][2] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
    precision = recall = 0.0
    orders = 0
    for n_hyp, n_ref, n_match in stats:
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            orders += 1
    if orders == 0:
        return 0.0
    precision, recall = precision / orders, recall / orders
    factor = beta ** 2
    if precision + recall == 0:
        return 0.0
    return 100 * (1 + factor) * precision * recall / (factor * precision + recall)


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenization: lowercase, non-alphanumerics to spaces, split."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _lcs_length(a: Sequence, b: Sequence) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _f1(matches: int, n_hyp: int, n_ref: int) -> float:
    precision = matches / n_hyp if n_hyp else 0.0
    recall = matches / n_ref if n_ref else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 over the pairs, in [0, 100]: ``{"rouge1", "rouge2", "rougeL"}``."""
    _check_pairs(hypotheses, references, "ROUGE")
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hypotheses, references):
        h, r = rouge_tokens(hyp), rouge_tokens(ref)
        for n, name in ((1, "rouge1"), (2, "rouge2")):
            hc, rc = _ngrams(h, n), _ngrams(r, n)
            sums[name] += _f1(sum((hc & rc).values()), sum(hc.values()), sum(rc.values()))
        sums["rougeL"] += _f1(_lcs_length(h, r), len(h), len(r))
    return {name: 100 * value / len(hypotheses) for name, value in sums.items()}


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def g2p_error_rates(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """``{"per", "wer"}`` in percent for phoneme sequences (see the section comment)."""
    _check_pairs(hypotheses, references, "PER/WER")
    errors = sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
    length = sum(len(r) for r in references)
    wrong = sum(list(h) != list(r) for h, r in zip(hypotheses, references))
    return {"per": 100 * errors / max(1, length), "wer": 100 * wrong / len(hypotheses)}
