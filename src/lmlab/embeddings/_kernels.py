"""Compiled hot loops for the static embeddings (word2vec, fastText, GloVe, fastText classifier).

Everything here is a plain function over numpy arrays, compiled with numba
(``nogil=True`` so that several Python threads run them at once on shared
weight matrices, Hogwild-style, as word2vec.c and gensim do). The model files
(``word2vec.py``, ``fasttext.py``, ``glove.py``) own the orchestration: vocabulary,
chunking, threads, learning-rate schedule; this file owns only the inner loops.

Conventions shared by the kernels:

* A training chunk is a run of sentences of the flat id array ``ids`` between
  ``sent_bounds[s]`` and ``sent_bounds[s + 1]``. A chunk carries its own random
  seed, so results do not depend on which thread runs it: with one worker and a
  seed, training is bit-for-bit deterministic.
* The random generator is word2vec.c's linear congruential generator
  ``r <- r * 25214903917 + 11`` on 64 bits; ``r >> 16`` gives the random bits.
* The learning rate decays linearly with the number of in-vocabulary words
  processed (sub-sampled ones included, as in word2vec.c), from ``alpha`` at the
  first word of the first epoch to ``min_alpha`` at the last word of the last.
* σ(x) is read from a table over [-MAX_EXP, MAX_EXP] (word2vec.c's EXP_TABLE);
  log σ(x) for the reported loss likewise.

numba is a core dependency; if it cannot be imported (a platform without its wheels) the
same functions run as plain Python, correct but some hundred times slower, and
:func:`announce_speed` says so loudly before training starts. ``HAVE_NUMBA`` says which.
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is the "fast" extra; without it the kernels run as (slow) Python
    from .._numba import _import_numba

    numba = _import_numba()
    njit = numba.njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

_ANNOUNCED = False


def announce_speed(name: str) -> None:
    """Say once, on stderr, that the kernels are running as plain Python when numba is missing."""
    global _ANNOUNCED
    if HAVE_NUMBA or _ANNOUNCED:
        return
    _ANNOUNCED = True
    import sys

    print(f"lmlab: warning: numba is not importable, so {name} runs its training loops as plain Python, "
          "some hundred times slower (minutes become hours); `pip install numba` restores the compiled kernels",
          file=sys.stderr)


MAX_EXP = 6.0
EXP_TABLE_SIZE = 1000
LCG_MUL = np.uint64(25214903917)
LCG_ADD = np.uint64(11)
MAX_SENTENCE_LEN = 10000  # longer sentences are cut, as gensim does


def make_sigmoid_tables() -> tuple[np.ndarray, np.ndarray]:
    """σ(x) and log σ(x) sampled at EXP_TABLE_SIZE points of [-MAX_EXP, MAX_EXP) (word2vec.c)."""
    x = (np.arange(EXP_TABLE_SIZE, dtype=np.float64) / EXP_TABLE_SIZE * 2 - 1) * MAX_EXP
    sig = 1.0 / (1.0 + np.exp(-x))
    return sig.astype(np.float32), np.log(sig).astype(np.float32)


@njit(inline="always")
def _lcg(r):
    return r * LCG_MUL + LCG_ADD


@njit(inline="always")
def _rand_below(r, n):
    """A value in [0, n) from the top 32 bits of generator state ``r`` (multiply-shift, no division)."""
    return np.int64(((r >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@njit(inline="always")
def _rand_unit(r):
    """A float in [0, 1) from generator state ``r``."""
    return np.float64((r >> np.uint64(16)) & np.uint64(0xFFFFFFFF)) / 4294967296.0


@njit(inline="always")
def _table_index(f):
    """The σ-table slot of f, clamped to the table.

    word2vec.c allocates EXP_TABLE_SIZE + 1 slots because f == MAX_EXP exactly maps to slot
    EXP_TABLE_SIZE; a table of EXP_TABLE_SIZE slots read there one float past its end (numba
    does not bounds-check), and a garbage σ became an unbounded update that could make a
    Hogwild run diverge. Clamping also keeps a NaN (int(NaN) is undefined) inside the table."""
    i = int((f + MAX_EXP) * (EXP_TABLE_SIZE / MAX_EXP / 2.0))
    if i < 0:
        return 0
    if i >= EXP_TABLE_SIZE:
        return EXP_TABLE_SIZE - 1
    return i


@njit(inline="always")
def _draw_negative(alias_prob, alias_index, r):
    """A noise word from Walker's alias table (O(1), exact); returns (word, r)."""
    r = _lcg(r)
    i = _rand_below(r, alias_prob.shape[0])
    r = _lcg(r)
    if _rand_unit(r) < alias_prob[i]:
        return i, r
    return np.int64(alias_index[i]), r


@njit(cache=True)
def sample_noise(alias_prob, alias_index, n, seed):
    """``n`` draws of the noise sampler the training kernels use (for statistical tests)."""
    out = np.empty(n, dtype=np.int64)
    r = np.uint64(seed)
    for t in range(n):
        out[t], r = _draw_negative(alias_prob, alias_index, r)
    return out


@njit(nogil=True, cache=True, fastmath=True)
def _output_layer(h, target, alpha, neu1e, syn1neg, syn1, alias_prob, alias_index, codes, points, code_lens,
                  use_hs, negative, r, sig_table, logsig_table):
    """One prediction of word ``target`` from hidden vector ``h``; adds ∂/∂h to neu1e.

    Hierarchical softmax (Huffman path of ``target``, code bit 0 ↦ σ(h·v'_n)) and/or
    negative sampling (1 positive, ``negative`` noise words). Updates the output
    vectors in place. Returns (loss, r).
    """
    dim = h.shape[0]
    loss = 0.0
    if use_hs:
        for d in range(code_lens[target]):
            node = points[target, d]
            f = np.float32(0.0)
            for k in range(dim):
                f += h[k] * syn1[node, k]
            sign = 1.0 - 2.0 * codes[target, d]  # +1 for code 0, -1 for code 1
            sf = sign * f
            if sf <= -MAX_EXP:
                loss -= sf
            elif sf < MAX_EXP:
                loss -= logsig_table[_table_index(sf)]
            if f <= -MAX_EXP or f >= MAX_EXP:
                continue  # word2vec.c skips saturated nodes
            g = np.float32((1.0 - codes[target, d] - sig_table[_table_index(f)]) * alpha)
            for k in range(dim):
                neu1e[k] += g * syn1[node, k]
            for k in range(dim):
                syn1[node, k] += g * h[k]
    if negative > 0:
        for d in range(negative + 1):
            if d == 0:
                word = target
                label = 1.0
            else:
                word, r = _draw_negative(alias_prob, alias_index, r)
                if word == target:
                    continue
                label = 0.0
            f = np.float32(0.0)
            for k in range(dim):
                f += h[k] * syn1neg[word, k]
            sf = f if label > 0.5 else -f
            if sf <= -MAX_EXP:
                loss -= sf
            elif sf < MAX_EXP:
                loss -= logsig_table[_table_index(sf)]
            if f > MAX_EXP:
                g = np.float32((label - 1.0) * alpha)
            elif f < -MAX_EXP:
                g = np.float32(label * alpha)
            else:
                g = np.float32((label - sig_table[_table_index(f)]) * alpha)
            for k in range(dim):
                neu1e[k] += g * syn1neg[word, k]
            for k in range(dim):
                syn1neg[word, k] += g * h[k]
    return loss, r


@njit(nogil=True, cache=True, fastmath=True)
def _subsample(ids, start, end, keep_prob, buf, r):
    """Copy the kept words of ids[start:end] into buf; return (count, r)."""
    n = 0
    for i in range(start, end):
        w = ids[i]
        if keep_prob[w] < 1.0:
            r = _lcg(r)
            if _rand_unit(r) >= keep_prob[w]:
                continue
        buf[n] = w
        n += 1
    return n, r


@njit(nogil=True, cache=True, fastmath=True)
def word2vec_chunk(ids, sent_bounds, s_begin, s_end, syn0, syn1neg, syn1, alias_prob, alias_index, codes, points,
                   code_lens, keep_prob, sg, use_hs, negative, window, cbow_mean, alpha, min_alpha,
                   words_before, total_words, seed, sig_table, logsig_table):
    """Train word2vec on sentences s_begin..s_end-1 (one chunk).

    Skip-gram: each context word c of centre w (within a window shrunk uniformly to
    1..window) predicts w from v_c (word2vec.c's order). CBOW: the mean (or sum) of the
    context vectors predicts w, and the full error is added to every context vector.
    Returns (summed loss, number of predictions, words trained after sub-sampling).
    """
    dim = syn0.shape[1]
    r = np.uint64(seed)
    buf = np.empty(MAX_SENTENCE_LEN, dtype=np.int32)
    neu1 = np.empty(dim, dtype=np.float32)
    neu1e = np.empty(dim, dtype=np.float32)
    loss = 0.0
    n_pred = 0
    n_trained = 0
    done = words_before
    for s in range(s_begin, s_end):
        start = sent_bounds[s]
        end = sent_bounds[s + 1]
        progress = done / total_words
        lr = alpha - (alpha - min_alpha) * progress
        lr = max(lr, min_alpha)
        n, r = _subsample(ids, start, end, keep_prob, buf, r)
        done += end - start
        n_trained += n
        for i in range(n):
            w = buf[i]
            r = _lcg(r)
            b = _rand_below(r, window)  # effective window = window - b, uniform in 1..window
            lo = max(0, i - window + b)
            hi = min(n, i + window + 1 - b)
            if sg:
                for j in range(lo, hi):
                    if j == i:
                        continue
                    c = buf[j]
                    for k in range(dim):
                        neu1e[k] = 0.0
                    l, r = _output_layer(syn0[c], w, lr, neu1e, syn1neg, syn1, alias_prob, alias_index, codes, points,
                                         code_lens, use_hs, negative, r, sig_table, logsig_table)
                    loss += l
                    n_pred += 1
                    for k in range(dim):
                        syn0[c, k] += neu1e[k]
            else:
                count = 0
                for k in range(dim):
                    neu1[k] = 0.0
                    neu1e[k] = 0.0
                for j in range(lo, hi):
                    if j == i:
                        continue
                    c = buf[j]
                    count += 1
                    for k in range(dim):
                        neu1[k] += syn0[c, k]
                if count == 0:
                    continue
                if cbow_mean:
                    inv = np.float32(1.0 / count)
                    for k in range(dim):
                        neu1[k] *= inv
                l, r = _output_layer(neu1, w, lr, neu1e, syn1neg, syn1, alias_prob, alias_index, codes, points,
                                     code_lens, use_hs, negative, r, sig_table, logsig_table)
                loss += l
                n_pred += 1
                if not cbow_mean:  # a summed input spreads its error over the window (gensim)
                    inv = np.float32(1.0 / count)
                    for k in range(dim):
                        neu1e[k] *= inv
                for j in range(lo, hi):
                    if j == i:
                        continue
                    c = buf[j]
                    for k in range(dim):
                        syn0[c, k] += neu1e[k]
    return loss, n_pred, n_trained


@njit(nogil=True, cache=True, fastmath=True)
def fasttext_chunk(ids, sent_bounds, s_begin, s_end, wi, sub_ptr, sub_idx, syn1neg, syn1, alias_prob, alias_index,
                   codes, points, code_lens, keep_prob, sg, use_hs, negative, window, alpha, min_alpha,
                   words_before, total_words, seed, sig_table, logsig_table):
    """Train fastText (Bojanowski et al. 2017) on sentences s_begin..s_end-1.

    A word's input is the mean of the rows ``wi[sub_idx[sub_ptr[w]:sub_ptr[w+1]]]``
    (its own row and its hashed character n-grams). Skip-gram: the centre's input
    predicts each context word; CBOW: the mean over all subword rows of the context
    words predicts the centre. As in fastText, the gradient is added unscaled to every
    input row and the hidden vector is recomputed for each prediction.
    """
    dim = wi.shape[1]
    r = np.uint64(seed)
    buf = np.empty(MAX_SENTENCE_LEN, dtype=np.int32)
    hidden = np.empty(dim, dtype=np.float32)
    grad = np.empty(dim, dtype=np.float32)
    loss = 0.0
    n_pred = 0
    n_trained = 0
    done = words_before
    for s in range(s_begin, s_end):
        start = sent_bounds[s]
        end = sent_bounds[s + 1]
        lr = alpha - (alpha - min_alpha) * (done / total_words)
        lr = max(lr, min_alpha)
        n, r = _subsample(ids, start, end, keep_prob, buf, r)
        done += end - start
        n_trained += n
        for i in range(n):
            w = buf[i]
            r = _lcg(r)
            b = _rand_below(r, window)
            lo = max(0, i - window + b)
            hi = min(n, i + window + 1 - b)
            if sg:
                p0 = sub_ptr[w]
                p1 = sub_ptr[w + 1]
                inv = np.float32(1.0 / (p1 - p0))
                for j in range(lo, hi):
                    if j == i:
                        continue
                    for k in range(dim):
                        hidden[k] = 0.0
                        grad[k] = 0.0
                    for p in range(p0, p1):
                        row = sub_idx[p]
                        for k in range(dim):
                            hidden[k] += wi[row, k]
                    for k in range(dim):
                        hidden[k] *= inv
                    l, r = _output_layer(hidden, buf[j], lr, grad, syn1neg, syn1, alias_prob, alias_index, codes, points,
                                         code_lens, use_hs, negative, r, sig_table, logsig_table)
                    loss += l
                    n_pred += 1
                    for p in range(p0, p1):
                        row = sub_idx[p]
                        for k in range(dim):
                            wi[row, k] += grad[k]
            else:
                count = 0
                for k in range(dim):
                    hidden[k] = 0.0
                    grad[k] = 0.0
                for j in range(lo, hi):
                    if j == i:
                        continue
                    c = buf[j]
                    for p in range(sub_ptr[c], sub_ptr[c + 1]):
                        row = sub_idx[p]
                        count += 1
                        for k in range(dim):
                            hidden[k] += wi[row, k]
                if count == 0:
                    continue
                inv = np.float32(1.0 / count)
                for k in range(dim):
                    hidden[k] *= inv
                l, r = _output_layer(hidden, w, lr, grad, syn1neg, syn1, alias_prob, alias_index, codes, points,
                                     code_lens, use_hs, negative, r, sig_table, logsig_table)
                loss += l
                n_pred += 1
                for j in range(lo, hi):
                    if j == i:
                        continue
                    c = buf[j]
                    for p in range(sub_ptr[c], sub_ptr[c + 1]):
                        row = sub_idx[p]
                        for k in range(dim):
                            wi[row, k] += grad[k]
    return loss, n_pred, n_trained


# ---------------------------------------------------------------------------------------------
# GloVe


@njit(nogil=True, cache=True)
def glove_pair_keys(ids, sent_bounds, window, vocab_size):
    """Left-context pairs of every sentence: keys centre * V + context and weights 1/distance.

    Only pairs with the context on the left are emitted; the model file adds the
    transpose to make the matrix symmetric (GloVe's symmetric window).
    """
    n_sent = sent_bounds.shape[0] - 1
    total = 0
    for s in range(n_sent):
        length = sent_bounds[s + 1] - sent_bounds[s]
        m = min(length, window)
        total += m * length - m * (m + 1) // 2
    keys = np.empty(total, dtype=np.int64)
    weights = np.empty(total, dtype=np.float64)
    n = 0
    for s in range(n_sent):
        start = sent_bounds[s]
        end = sent_bounds[s + 1]
        for i in range(start, end):
            w = np.int64(ids[i])
            for j in range(max(start, i - window), i):
                keys[n] = w * vocab_size + ids[j]
                weights[n] = 1.0 / (i - j)
                n += 1
    return keys, weights


@njit(nogil=True, cache=True, fastmath=True)
def _dot_rows(W, i, C, j):
    """w_i · w̃_j (fast-math: inputs are finite)."""
    dot = np.float32(0.0)
    for k in range(W.shape[1]):
        dot += W[i, k] * C[j, k]
    return dot


@njit(nogil=True, cache=True, fastmath=True)
def _adagrad_rows(W, i, C, j, gW, gC, fd, grad_clip):
    """AdaGrad step of w_i and w̃_j for the weighted error fd (η already applied), clipped as glove.c."""
    for k in range(W.shape[1]):
        t1 = min(max(fd * C[j, k], -grad_clip), grad_clip)
        t2 = min(max(fd * W[i, k], -grad_clip), grad_clip)
        W[i, k] -= t1 / np.sqrt(gW[i, k])
        C[j, k] -= t2 / np.sqrt(gC[j, k])
        gW[i, k] += t1 * t1
        gC[j, k] += t2 * t2


@njit(nogil=True, cache=True)
def glove_epoch(rows, cols, logx, fx, begin, end, W, C, bw, bc, gW, gC, gbw, gbc, eta, grad_clip):
    """AdaGrad over the non-zero cells begin..end-1 (in the given order) of the co-occurrence matrix.

    J = Σ f(X_ij) (w_i·w̃_j + b_i + b̃_j − log X_ij)², with per-parameter AdaGrad
    (squared-gradient sums start at 1) and each gradient component clipped to
    ±grad_clip, as in glove.c. A cell whose weighted error is not finite is skipped, so
    a tiny vocabulary cannot produce NaNs. This function is compiled with strict IEEE
    semantics (so the finiteness test stays); only the vector loops it calls use fast-math.
    Returns the summed cost ½ Σ f(x) · diff².
    """
    cost = 0.0
    for e in range(begin, end):
        i = rows[e]
        j = cols[e]
        diff = np.float64(_dot_rows(W, i, C, j)) + bw[i] + bc[j] - logx[e]
        fdiff = fx[e] * diff
        if not math.isfinite(fdiff):
            continue  # glove.c: "Caught NaN in diff ... Skipping update"
        cost += 0.5 * fdiff * diff
        fdiff *= eta
        _adagrad_rows(W, i, C, j, gW, gC, np.float32(fdiff), grad_clip)
        bw[i] -= fdiff / math.sqrt(gbw[i])
        bc[j] -= fdiff / math.sqrt(gbc[j])
        gbw[i] += fdiff * fdiff
        gbc[j] += fdiff * fdiff
    return cost


# ---------------------------------------------------------------------------------------------
# fastText classifier


@njit(nogil=True, cache=True, fastmath=True)
def classifier_epoch(tokens, doc_bounds, labels, order, wi, wo, alpha, min_alpha, done_before, total_docs):
    """One SGD epoch of the fastText classifier (Joulin et al. 2017).

    hidden = mean of the input rows of the document's tokens (words and hashed word
    n-grams); scores = wo · hidden; softmax cross-entropy on the label. As in fastText's
    supervised mode, the gradient w.r.t. hidden is divided by the number of inputs.
    Returns the summed loss.
    """
    dim = wi.shape[1]
    n_labels = wo.shape[0]
    hidden = np.empty(dim, dtype=np.float32)
    grad = np.empty(dim, dtype=np.float32)
    scores = np.empty(n_labels, dtype=np.float64)
    loss = 0.0
    for t in range(order.shape[0]):
        d = order[t]
        p0 = doc_bounds[d]
        p1 = doc_bounds[d + 1]
        if p1 == p0:
            continue
        lr = alpha - (alpha - min_alpha) * ((done_before + t) / total_docs)
        for k in range(dim):
            hidden[k] = 0.0
            grad[k] = 0.0
        for p in range(p0, p1):
            row = tokens[p]
            for k in range(dim):
                hidden[k] += wi[row, k]
        inv = np.float32(1.0 / (p1 - p0))
        for k in range(dim):
            hidden[k] *= inv
        top = -1e300
        for c in range(n_labels):
            s = 0.0
            for k in range(dim):
                s += wo[c, k] * hidden[k]
            scores[c] = s
            top = max(top, s)
        z = 0.0
        for c in range(n_labels):
            scores[c] = math.exp(scores[c] - top)
            z += scores[c]
        y = labels[d]
        loss -= math.log(max(scores[y] / z, 1e-30))
        for c in range(n_labels):
            g = np.float32(lr * ((1.0 if c == y else 0.0) - scores[c] / z))
            for k in range(dim):
                grad[k] += g * wo[c, k]
                wo[c, k] += g * hidden[k]
        for k in range(dim):
            grad[k] *= inv
        for p in range(p0, p1):
            row = tokens[p]
            for k in range(dim):
                wi[row, k] += grad[k]
    return loss


@njit(nogil=True, cache=True, fastmath=True)
def classifier_predict(tokens, doc_bounds, wi, wo):
    """Label scores (before softmax) of each document: wo · mean(wi[tokens])."""
    n_docs = doc_bounds.shape[0] - 1
    dim = wi.shape[1]
    out = np.zeros((n_docs, wo.shape[0]), dtype=np.float32)
    hidden = np.empty(dim, dtype=np.float32)
    for d in range(n_docs):
        p0 = doc_bounds[d]
        p1 = doc_bounds[d + 1]
        for k in range(dim):
            hidden[k] = 0.0
        if p1 > p0:
            for p in range(p0, p1):
                for k in range(dim):
                    hidden[k] += wi[tokens[p], k]
            for k in range(dim):
                hidden[k] /= p1 - p0
        for c in range(wo.shape[0]):
            s = np.float32(0.0)
            for k in range(dim):
                s += wo[c, k] * hidden[k]
            out[d, c] = s
    return out


# ---------------------------------------------------------------------------------------------
# fastText hashing


@njit(cache=True)
def fnv1a_batch(data, offsets):
    """fastText's 32-bit FNV-1a of each byte string data[offsets[i]:offsets[i+1]].

    As in fastText's ``Dictionary::hash``, each byte is sign-extended (``int8_t``)
    before the XOR, which changes the value only for bytes >= 0x80 (non-ASCII UTF-8).
    """
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint32)
    for i in range(n):
        h = np.uint64(2166136261)
        for p in range(offsets[i], offsets[i + 1]):
            v = np.uint64(data[p])
            if v >= 128:
                v = v | np.uint64(0xFFFFFF00)  # sign extension of int8 to uint32
            h = ((h ^ v) * np.uint64(16777619)) & np.uint64(0xFFFFFFFF)
        out[i] = np.uint32(h)
    return out


def thread_count_note() -> str:
    """How the kernels run (for logs)."""
    if not HAVE_NUMBA:
        return "pure Python (numba not installed: slow)"
    return f"numba {numba.__version__}, nogil threads"
