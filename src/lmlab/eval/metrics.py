"""Task metrics.

Each section below is one kind of task; every function takes plain Python lists and strings and
returns plain numbers, so any task (or a user's own predictions) can be scored, and each is tested
equal to the reference tool its section names.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError

# --- classification, tagging, QA -------------------------------------------------------------
#
# Classification: accuracy and macro-F1 (equal-weight mean of per-class F1 over the classes that
# occur in the gold or predicted labels), and binary precision / recall / F1 of one positive class.
#
# Tagging: entity-level micro precision / recall / F1 over BIO (IOB2) or BIOES label sequences,
# in the two modes of seqeval (Nakayama, 2018), which the tests check against seqeval itself:
#
# - ``mode="default"`` reads chunks the way the CoNLL-2000 ``conlleval`` script does: an I- after
#   O (or after another type) starts an entity, an E-/S- ends one, whatever is malformed is
#   repaired rather than dropped;
# - ``mode="strict"`` keeps only well-formed entities of the scheme: an entity starts at B- (or S-
#   in BIOES), continues over I- of its type (and, in BIOES, must end on E- or be one S-); an
#   I- with no B- is no entity at all. A label outside the scheme (E- in BIO) is an error.
#
# Extractive QA: the official SQuAD v2.0 evaluation (``evaluate-v2.0.py``): answers normalised
# (lower-case, punctuation removed, the articles a/an/the removed, whitespace collapsed),
# exact match and token-level F1 against the best of the gold answers (an unanswerable
# question has the one gold answer ""), and the no-answer threshold on a no-answer score
# (``apply_no_answer_threshold``, ``best_threshold``: the script's ``find_best_thresh``).


def accuracy(gold: list, predicted: list) -> float:
    """The fraction of positions where ``predicted`` equals ``gold``."""
    if len(gold) != len(predicted) or not gold:
        raise UsageError(f"accuracy needs two equal, non-empty label lists ({len(gold)} vs {len(predicted)})")
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def macro_f1(gold: list, predicted: list) -> float:
    """Mean over classes (in gold or predicted) of F1 = 2PR / (P + R) (0 where undefined)."""
    if len(gold) != len(predicted) or not gold:
        raise UsageError(f"macro_f1 needs two equal, non-empty label lists ({len(gold)} vs {len(predicted)})")
    scores = []
    for c in sorted(set(gold) | set(predicted), key=repr):
        tp = sum(g == c and p == c for g, p in zip(gold, predicted))
        fp = sum(g != c and p == c for g, p in zip(gold, predicted))
        fn = sum(g == c and p != c for g, p in zip(gold, predicted))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def binary_f1(gold: list, predicted: list, positive=1) -> float:
    """F1 of the class ``positive`` (0 when it is never predicted correctly)."""
    if len(gold) != len(predicted) or not gold:
        raise UsageError(f"binary_f1 needs two equal, non-empty label lists ({len(gold)} vs {len(predicted)})")
    tp = sum(g == positive and p == positive for g, p in zip(gold, predicted))
    fp = sum(g != positive and p == positive for g, p in zip(gold, predicted))
    fn = sum(g == positive and p != positive for g, p in zip(gold, predicted))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


SCHEMES = ("bio", "bioes")
MODES = ("default", "strict")


def _split_label(label: str) -> tuple[str, str]:
    """("B", "PER") of "B-PER"; ("O", "") of "O"."""
    prefix, _, kind = label.partition("-")
    return prefix, kind


def _conll_chunks(labels: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) chunks, end exclusive, by conlleval's start/end-of-chunk rules."""
    chunks = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, label in enumerate([*labels, "O"]):
        tag = label[:1]
        kind = label[1:].split("-", 1)[-1] or "_"
        ends = (prev_tag in "ES" and prev_tag != "") or (prev_tag in ("B", "I") and tag in ("B", "S", "O")) \
            or (prev_tag not in ("O", ".") and prev_type != kind)
        if ends:
            chunks.append((begin, i, prev_type))
        starts = tag in ("B", "S") or (prev_tag in ("E", "S", "O") and tag in ("E", "I")) \
            or (tag not in ("O", ".") and prev_type != kind)
        if starts:
            begin = i
        prev_tag, prev_type = tag, kind
    return chunks


_STRICT_PREFIXES = {"bio": {"B", "I", "O"}, "bioes": {"B", "I", "O", "E", "S"}}


def _strict_chunks(labels: list[str], scheme: str) -> list[tuple[int, int, str]]:
    """Only the well-formed entities of ``scheme`` (seqeval's strict mode)."""
    parsed = []
    for i, label in enumerate(labels):
        prefix, kind = _split_label(label)
        if prefix not in _STRICT_PREFIXES[scheme] or (prefix == "O") != (kind == ""):
            raise UsageError(f"label {label!r} at position {i} is not a {scheme.upper()} label")
        parsed.append((prefix, kind))
    parsed.append(("O", ""))
    continues = {"bio": {"B": {"I"}, "I": {"I"}}, "bioes": {"B": {"I", "E"}, "I": {"I", "E"}}}[scheme]
    chunks, i = [], 0
    while i < len(labels):
        prefix, kind = parsed[i]
        if prefix not in ("B", "S"):
            i += 1
            continue
        j = i + 1
        if prefix == "B":  # walk over the same type's I- (and E-, which closes the entity in BIOES)
            while parsed[j][1] == kind and parsed[j][0] in continues.get(parsed[j - 1][0], ()):
                j += 1
        last = parsed[j - 1][0]
        if scheme == "bio" or last in ("E", "S"):
            chunks.append((i, j, kind))
        i = j
    return chunks


def entity_spans(labels: list[str], scheme: str = "bio", mode: str = "default") -> list[tuple[int, int, str]]:
    """(start, end, type) of the entities in one label sequence, end exclusive.

    ``mode="default"`` reads BIO and BIOES alike (conlleval's rules); ``mode="strict"`` keeps only the
    entities that are well formed in ``scheme``."""
    if scheme not in SCHEMES:
        raise UsageError(f"unknown tagging scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if mode not in MODES:
        raise UsageError(f"unknown entity mode {mode!r}; choose one of {', '.join(MODES)}")
    return _conll_chunks(list(labels)) if mode == "default" else _strict_chunks(list(labels), scheme)


@dataclass
class EntityScores:
    """Micro-averaged entity precision, recall, F1, and the same per type; counts of true positives,
    predicted and gold entities."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    gold: int
    per_type: dict


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_scores(gold: list[list[str]], predicted: list[list[str]], scheme: str = "bio",
                  mode: str = "default") -> EntityScores:
    """Entity-level scores of predicted label sequences against gold ones (one list per sentence)."""
    if len(gold) != len(predicted):
        raise UsageError(f"entity scores need as many predicted sequences as gold ones ({len(predicted)} vs {len(gold)})")
    counts: dict[str, list[int]] = {}
    for n, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise UsageError(f"sentence {n}: {len(g)} gold labels but {len(p)} predicted")
        gs, ps = set(entity_spans(g, scheme, mode)), set(entity_spans(p, scheme, mode))
        for span in gs | ps:
            row = counts.setdefault(span[2], [0, 0, 0])
            row[0] += span in gs and span in ps
            row[1] += span in ps
            row[2] += span in gs
    tp, n_pred, n_gold = (sum(row[k] for row in counts.values()) for k in range(3))
    per_type = {kind: dict(zip(("precision", "recall", "f1"), _prf(*row)), support=row[2])
                for kind, row in sorted(counts.items())}
    return EntityScores(*_prf(tp, n_pred, n_gold), tp, n_pred, n_gold, per_type)


def entity_f1(gold: list[list[str]], predicted: list[list[str]], scheme: str = "bio", mode: str = "default") -> float:
    """Micro-averaged entity F1 (seqeval's ``f1_score``)."""
    return entity_scores(gold, predicted, scheme, mode).f1


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower-case, drop punctuation, drop a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact(gold: str, predicted: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(predicted))


def squad_f1(gold: str, predicted: str) -> float:
    """Token-overlap F1 of the normalised answers; 1/0 by equality when either one is empty."""
    gold_tokens = normalize_answer(gold).split() if gold else []
    pred_tokens = normalize_answer(predicted).split() if predicted else []
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_raw_scores(gold_answers: dict[str, list[str]], predictions: dict[str, str]) -> tuple[dict, dict]:
    """({id: exact}, {id: F1}) of each question, the max over its gold answers (those that normalise
    to nothing are dropped; none left means unanswerable, gold "")."""
    exact, f1 = {}, {}
    for qid, answers in gold_answers.items():
        if qid not in predictions:
            raise UsageError(f"no prediction for question {qid!r}")
        golds = [a for a in answers if normalize_answer(a)] or [""]
        exact[qid] = max(squad_exact(a, predictions[qid]) for a in golds)
        f1[qid] = max(squad_f1(a, predictions[qid]) for a in golds)
    return exact, f1


def has_answer(gold_answers: dict[str, list[str]]) -> dict[str, bool]:
    return {qid: any(normalize_answer(a) for a in answers) for qid, answers in gold_answers.items()}


def apply_no_answer_threshold(scores: dict, no_answer: dict, answerable: dict, threshold: float) -> dict:
    """A question whose no-answer score exceeds ``threshold`` is answered "" (right iff unanswerable)."""
    return {qid: float(not answerable[qid]) if no_answer[qid] > threshold else s for qid, s in scores.items()}


def best_threshold(predictions: dict, scores: dict, no_answer: dict, answerable: dict) -> tuple[float, float]:
    """(best score in %, its threshold): the official script's sweep, answering questions in order of
    increasing no-answer score, starting from "every question unanswered"."""
    current = best = sum(not answerable[qid] for qid in scores)
    threshold = 0.0
    for qid in sorted(no_answer, key=lambda k: no_answer[k]):
        if qid not in scores:
            continue
        if answerable[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, threshold = current, no_answer[qid]
    return 100.0 * best / len(scores), threshold


def squad_v2(gold_answers: dict[str, list[str]], predictions: dict[str, str],
             no_answer: dict[str, float] | None = None, threshold: float = 1.0) -> dict:
    """The official SQuAD v2.0 numbers (in %): exact, f1, HasAns_/NoAns_ parts, and, given no-answer
    scores, best_exact / best_f1 with their thresholds."""
    answerable = has_answer(gold_answers)
    no_answer = no_answer if no_answer is not None else {qid: 0.0 for qid in gold_answers}
    exact_raw, f1_raw = squad_raw_scores(gold_answers, predictions)
    exact = apply_no_answer_threshold(exact_raw, no_answer, answerable, threshold)
    f1 = apply_no_answer_threshold(f1_raw, no_answer, answerable, threshold)
    total = len(gold_answers)
    if not total:
        raise UsageError("SQuAD scores of no questions")
    out = {"exact": 100.0 * sum(exact.values()) / total, "f1": 100.0 * sum(f1.values()) / total, "total": total}
    for name, keep in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid in gold_answers if answerable[qid] == keep]
        if ids:
            out[f"{name}_exact"] = 100.0 * sum(exact[q] for q in ids) / len(ids)
            out[f"{name}_f1"] = 100.0 * sum(f1[q] for q in ids) / len(ids)
            out[f"{name}_total"] = len(ids)
    out["best_exact"], out["best_exact_thresh"] = best_threshold(predictions, exact_raw, no_answer, answerable)
    out["best_f1"], out["best_f1_thresh"] = best_threshold(predictions, f1_raw, no_answer, answerable)
    return out


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
