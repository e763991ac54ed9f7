"""Token streams on disk, and the batch sources every neural family trains from.

A prepared split is a folder::

    ids.bin        all token ids of the split, back to back (uint16 if the vocabulary fits, else uint32)
    offsets.npy    int64, n_documents + 1 entries: document i is ids[offsets[i]:offsets[i+1]]
    meta.json      tokenizer kind, vocabulary size, dtype, counts, SHA-256 of the source text

:class:`TokenStream` opens it as a numpy memmap (nothing is loaded until read).
``offsets.npy`` is read with ``allow_pickle=False``.

Batch sources are *random access and deterministic* and follow the Trainer's
``BatchSource`` protocol: ``batch(step, shard, shards)`` is a pure function of the
step number (and the seed) returning torch tensors; ``batch_size`` is the
*global* batch, and ``shards`` (micro-batches x processes) split it into equal,
disjoint parts. So a resumed run asks for the same batches the uninterrupted run
would have seen, and 4 micro-batches of B rows are exactly one batch of 4B.
Shapes:

- :class:`LMBlocks` — contiguous blocks of ``seq_len + 1`` tokens cut from the
  whole stream (documents separated by ``</s>``), shuffled each epoch: the
  input is ``block[:-1]``, the target ``block[1:]`` (GPT-style causal LMs).
- :class:`BPTTBatches` — the stream laid out in ``batch_size`` parallel
  columns and read in consecutive windows, so an RNN can carry its hidden
  state from one batch to the next (truncated BPTT); each batch also says
  where a document starts, so the state can be reset there.
- :class:`PackedSequences` / :class:`SentenceRows` — fixed-length rows packed
  with document ids (for masking attention across documents), or one
  document per row, padded.
- :class:`PairRows` — sequence-to-sequence pairs, one pair per row laid out by
  :func:`pair_rows` as ``[source (S) | <s> target (T + 1) | target </s> (T + 1)]``,
  reshuffled every epoch, optionally bucketed by source length (the encoder-decoder
  Transformer; the objective that reads the rows is :mod:`lmlab.objectives.seq2seq`).
- :class:`WindowBatches` / :class:`WindowEval` — the NNLM's (context, target) windows,
  shuffled each epoch / in order (:mod:`lmlab.objectives.nextword`).
- :class:`BPTTStream` — the recurrent LMs' stream in lanes read block by block, with a
  document's first token flagged (id + vocab_size) so the state resets there
  (:func:`bptt_documents` lays documents out; :mod:`lmlab.objectives.bptt` reads it).
  It predates :class:`BPTTBatches` and keeps its own flag encoding so that every measured
  LSTM number stays reproducible; folding the two into one is left open.
- :class:`Rows` — a fixed (N, T) tensor of rows (BERT-family pretraining rows, fine-tuning
  rows), reshuffled each epoch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, UsageError
from ..io import atomic_write_bytes, atomic_write_text


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def write_stream(folder: str | Path, documents: Iterable[list[int]], vocab_size: int,
                 meta: dict | None = None, source_text_hash: str | None = None) -> TokenStream:
    """Write encoded documents (each a list of ids) as a token stream folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for(vocab_size)
    lengths, chunks = [], []
    for doc in documents:
        arr = np.asarray(doc, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
            raise DataError(f"token id out of range [0, {vocab_size}) while writing {folder}")
        chunks.append(arr.astype(dtype))
        lengths.append(arr.size)
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    atomic_write_bytes(folder / "ids.bin", ids.tobytes())
    import io

    buffer = io.BytesIO()
    np.save(buffer, offsets, allow_pickle=False)
    atomic_write_bytes(folder / "offsets.npy", buffer.getvalue())
    info = {
        "vocab_size": int(vocab_size), "dtype": dtype.name, "n_tokens": int(ids.size),
        "n_documents": len(lengths), "ids_sha256": hashlib.sha256(ids.tobytes()).hexdigest(),
        "source_sha256": source_text_hash, **(meta or {}),
    }
    atomic_write_text(folder / "meta.json", json.dumps(info, indent=2) + "\n")
    return TokenStream(folder)


class TokenStream:
    """A prepared split: ``ids`` (memmap), ``offsets`` (document starts), ``meta``."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        for name in ("ids.bin", "offsets.npy", "meta.json"):
            if not (folder / name).is_file():
                raise DataError(f"{folder}: not a token stream (missing {name}); run `lmlab corpus prepare`")
        try:
            self.meta = json.loads((folder / "meta.json").read_text("utf-8"))
            self.offsets = np.load(folder / "offsets.npy", allow_pickle=False)
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{folder}: corrupt token stream metadata ({err})") from None
        dtype = np.dtype(self.meta["dtype"])
        size = (folder / "ids.bin").stat().st_size
        if size != self.meta["n_tokens"] * dtype.itemsize or self.offsets[-1] != self.meta["n_tokens"]:
            raise DataError(f"{folder}: ids.bin has {size} bytes, meta.json expects "
                            f"{self.meta['n_tokens']} {dtype.name} tokens (truncated?)")
        self.folder = folder
        self.ids = (np.memmap(folder / "ids.bin", dtype=dtype, mode="r") if size
                    else np.zeros(0, dtype=dtype))

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def n_documents(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def document(self, i: int) -> np.ndarray:
        return np.asarray(self.ids[self.offsets[i]:self.offsets[i + 1]])


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _shard_rows(rows: np.ndarray, shard: int, shards: int) -> torch.Tensor:
    """Rows of part ``shard`` of ``shards`` of a global batch, as a torch tensor."""
    if rows.shape[0] % shards:
        raise DataError(f"global batch of {rows.shape[0]} rows does not divide into {shards} shards "
                        f"(micro-batches x processes)")
    per = rows.shape[0] // shards
    return torch.from_numpy(np.ascontiguousarray(rows[shard * per:(shard + 1) * per]))


@dataclass
class LMBlocks:
    """Shuffled contiguous blocks of ``seq_len + 1`` tokens; ``batch(step)`` -> int64 [B, T+1]."""

    ids: np.ndarray
    seq_len: int
    batch_size: int
    seed: int = 0
    shuffle: bool = True

    def __post_init__(self):
        self.n_blocks = (len(self.ids) - 1) // self.seq_len
        if self.n_blocks < self.batch_size:
            raise DataError(f"stream of {len(self.ids)} tokens gives {self.n_blocks} blocks of {self.seq_len}; "
                            f"need at least batch_size={self.batch_size}")
        self.steps_per_epoch = self.n_blocks // self.batch_size

    def block(self, index: int) -> np.ndarray:
        start = index * self.seq_len
        return np.asarray(self.ids[start:start + self.seq_len + 1], dtype=np.int64)

    def batch(self, step: int, shard: int = 0, shards: int = 1) -> np.ndarray:
        epoch, within = divmod(step, self.steps_per_epoch)
        order = _epoch_order(self.n_blocks, self.seed, epoch) if self.shuffle else np.arange(self.n_blocks)
        chosen = order[within * self.batch_size:(within + 1) * self.batch_size]
        rows = np.stack([self.block(int(i)) for i in chosen])  # [B, T+1]
        return _shard_rows(rows, shard, shards)

    def eval_batches(self, rank: int = 0, world: int = 1) -> Iterable[torch.Tensor]:
        """Every block once, in order (the Trainer's EvalSource); process ``rank`` takes every
        ``world``-th batch. The last partial batch is included."""
        for index, first in enumerate(range(0, self.n_blocks, self.batch_size)):
            if index % world == rank:
                last = min(first + self.batch_size, self.n_blocks)
                yield torch.from_numpy(np.stack([self.block(i) for i in range(first, last)]))


@dataclass
class BPTTBatches:
    """Truncated-BPTT batches: ``batch(step)`` -> (ids [B, T+1], doc_start bool [B, T]).

    The stream is cut into ``batch_size`` equal columns; step ``s`` reads tokens
    ``s*T .. s*T+T`` of every column, so the hidden state of row b at the end of
    one batch is the right initial state for row b of the next. ``doc_start[b, t]``
    is True where input position t is the first token of a document (the state
    should be reset before it). Steps wrap around epochs in the same order.
    """

    ids: np.ndarray
    batch_size: int
    bptt: int
    doc_starts: np.ndarray | None = None  # bool per token, True at each document's first token

    def __post_init__(self):
        n = (len(self.ids) - 1) // self.batch_size
        if n < self.bptt + 1:
            raise DataError(f"stream of {len(self.ids)} tokens is too short for batch {self.batch_size} x bptt {self.bptt}")
        self.column_len = n
        self.columns = np.asarray(self.ids[: n * self.batch_size + 1], dtype=np.int64)
        starts = (np.zeros(len(self.columns), dtype=bool) if self.doc_starts is None
                  else np.asarray(self.doc_starts[: len(self.columns)], dtype=bool))
        self.starts = starts
        self.steps_per_epoch = (n - 1) // self.bptt

    def batch(self, step: int, shard: int = 0, shards: int = 1):
        within = step % self.steps_per_epoch
        t0 = within * self.bptt
        base = (np.arange(self.batch_size) * self.column_len)[:, None] + t0  # [B, 1]
        index = base + np.arange(self.bptt + 1)[None, :]                       # [B, T+1]
        ids = self.columns[index]
        starts = self.starts[index[:, :-1]]
        starts[:, 0] |= within == 0  # a new epoch starts every column afresh
        return _shard_rows(ids, shard, shards), _shard_rows(starts, shard, shards)

    def eval_batches(self, rank: int = 0, world: int = 1):
        """One pass over the columns in order, as (ids, doc_start) pairs (state carried across).

        Only rank 0 evaluates: the columns must be read in order to carry the state."""
        if rank != 0:
            return
        for step in range(self.steps_per_epoch):
            yield self.batch(step)


@dataclass
class PackedSequences:
    """Fixed-length rows packed from whole documents: ``batch(step)`` -> (ids [B, T], doc_ids [B, T]).

    Documents are laid back to back (each may be split across rows); ``doc_ids``
    numbers the documents inside a row from 0, so an attention mask can keep a
    token from attending across a document boundary (-1 marks padding).
    """

    stream: TokenStream
    seq_len: int
    batch_size: int
    seed: int = 0
    pad_id: int = 0

    def __post_init__(self):
        ids = np.asarray(self.stream.ids, dtype=np.int64)
        doc_of_token = np.repeat(np.arange(self.stream.n_documents), np.diff(self.stream.offsets))
        n_rows = -(-len(ids) // self.seq_len)
        pad = n_rows * self.seq_len - len(ids)
        self.rows = np.concatenate([ids, np.full(pad, self.pad_id)]).reshape(n_rows, self.seq_len)
        docs = np.concatenate([doc_of_token, np.full(pad, -1)]).reshape(n_rows, self.seq_len)
        first = np.where(docs >= 0, docs - docs[:, :1], -1)  # renumber from 0 inside each row
        self.doc_ids = first
        if n_rows < self.batch_size:
            raise DataError(f"{n_rows} packed rows is fewer than batch_size={self.batch_size}")
        self.steps_per_epoch = n_rows // self.batch_size

    def batch(self, step: int, shard: int = 0, shards: int = 1):
        epoch, within = divmod(step, self.steps_per_epoch)
        order = _epoch_order(len(self.rows), self.seed, epoch)
        chosen = order[within * self.batch_size:(within + 1) * self.batch_size]
        return _shard_rows(self.rows[chosen], shard, shards), _shard_rows(self.doc_ids[chosen], shard, shards)


@dataclass
class SentenceRows:
    """One document (or sentence) per row, truncated to ``max_len`` and right-padded.

    ``batch(step)`` -> (ids [B, L], lengths [B]) with L the longest row of the batch.
    """

    stream: TokenStream
    max_len: int
    batch_size: int
    seed: int = 0
    pad_id: int = 0

    def __post_init__(self):
        if self.stream.n_documents < self.batch_size:
            raise DataError(f"{self.stream.n_documents} rows is fewer than batch_size={self.batch_size}")
        self.steps_per_epoch = self.stream.n_documents // self.batch_size

    def batch(self, step: int, shard: int = 0, shards: int = 1):
        epoch, within = divmod(step, self.steps_per_epoch)
        order = _epoch_order(self.stream.n_documents, self.seed, epoch)
        chosen = order[within * self.batch_size:(within + 1) * self.batch_size]
        docs = [self.stream.document(int(i))[: self.max_len] for i in chosen]
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        out = np.full((len(docs), max(1, int(lengths.max()))), self.pad_id, dtype=np.int64)
        for row, doc in enumerate(docs):
            out[row, :len(doc)] = doc
        return _shard_rows(out, shard, shards), _shard_rows(lengths, shard, shards)


def pair_rows(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], src_len: int, tgt_len: int,
              pad_id: int = 0, bos_id: int = 1, eos_id: int = 2) -> torch.Tensor:
    """(source ids, target ids) pairs -> int64 rows (N, S + 2 (T + 1)), S = ``src_len``, T = ``tgt_len``::

        [ x_1 .. x_m <pad>.. (S) | <s> y_1 .. y_n <pad>.. (T + 1) | y_1 .. y_n </s> <pad>.. (T + 1) ]

    the source, the decoder's input (target shifted right behind ``<s>``) and the decoder's
    output (the target followed by ``</s>``), each right-padded. Sources longer than S and
    targets longer than T are cut (the target before ``</s>`` is added).
    """
    if not pairs:
        raise DataError("no sequence pairs to lay out as rows")
    if src_len < 1 or tgt_len < 1:
        raise DataError(f"src_len and tgt_len must be >= 1, got {src_len} and {tgt_len}")
    S, T = src_len, tgt_len + 1
    rows = np.full((len(pairs), S + 2 * T), pad_id, dtype=np.int64)
    for i, (source, target) in enumerate(pairs):
        source, target = list(source[:src_len]), list(target[:tgt_len])
        n = len(target)
        rows[i, :len(source)] = source
        rows[i, S:S + n + 1] = [bos_id, *target]          # target-in
        rows[i, S + T:S + T + n + 1] = [*target, eos_id]  # target-out
    return torch.from_numpy(rows)


@dataclass(eq=False)
class PairRows:
    """Rows of :func:`pair_rows`, reshuffled every epoch: ``batch(step)`` -> int64 (B, S + 2 (T + 1)).

    Epoch ``e`` visits the rows in the order of ``torch.randperm`` seeded with ``seed * 1000 + e``,
    ``len(rows) // batch_size`` batches of ``batch_size`` rows (the remainder of the order waits
    for the next epoch's reshuffle). With ``bucket`` > 1, each epoch's order is cut into runs of
    ``bucket`` batches, each run sorted by source length (stable), and the epoch's batches are
    shuffled again with the same generator: a batch holds rows of similar length, so little of it
    is padding once the objective trims the all-pad columns. ``pad_id`` marks padding in the
    source (for the lengths). The batches of an epoch are computed once and kept.

    ``eval_batches`` yields every row once, in order (the last batch may be short).
    """

    rows: torch.Tensor
    src_len: int
    batch_size: int
    seed: int = 0
    bucket: int = 1
    pad_id: int = 0
    _epoch: int = field(default=-1, init=False, repr=False)
    _batches: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        if self.rows.ndim != 2 or self.rows.shape[1] <= self.src_len:
            raise DataError(f"pair rows must be (N, S + 2 (T + 1)) with S = {self.src_len}, "
                            f"got shape {tuple(self.rows.shape)}")
        if self.batch_size < 1 or self.bucket < 1:
            raise DataError(f"batch_size and bucket must be >= 1, got {self.batch_size} and {self.bucket}")
        if len(self.rows) < self.batch_size:
            raise DataError(f"{len(self.rows)} sequence pairs is fewer than batch_size={self.batch_size}")
        self.steps_per_epoch = len(self.rows) // self.batch_size
        self.lengths = (self.rows[:, :self.src_len] != self.pad_id).sum(dim=1)  # (N,) source lengths

    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.rows), generator=generator)
        B = self.batch_size
        if self.bucket > 1:
            run = self.bucket * B
            runs = [order[i:i + run] for i in range(0, len(order), run)]
            order = torch.cat([r[torch.argsort(self.lengths[r], stable=True)] for r in runs])
        batches = [order[i * B:(i + 1) * B] for i in range(self.steps_per_epoch)]
        if self.bucket > 1:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def batch(self, step: int, shard: int = 0, shards: int = 1) -> torch.Tensor:
        if self.batch_size % shards:
            raise DataError(f"global batch of {self.batch_size} rows does not divide into {shards} shards "
                            f"(micro-batches x processes)")
        epoch, within = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._epoch_batches(epoch)
        chosen = self._batches[within]
        per = self.batch_size // shards
        return self.rows[chosen[shard * per:(shard + 1) * per]]

    def eval_batches(self, rank: int = 0, world: int = 1) -> Iterable[torch.Tensor]:
        """Every row once, in order, ``batch_size`` at a time; process ``rank`` takes every ``world``-th batch."""
        for index, first in enumerate(range(0, len(self.rows), self.batch_size)):
            if index % world == rank:
                yield self.rows[first:first + self.batch_size]


def encode_word_sentences(sentences: list[list[str]], tokenizer, add_bos: bool = False) -> list[list[int]]:
    """Each sentence as ids with ``</s>`` appended (and ``<s>`` prepended if asked)."""
    eos = tokenizer.token_to_id("</s>")
    bos = tokenizer.token_to_id("<s>")
    out = []
    for sentence in sentences:
        ids = tokenizer.encode_tokens(sentence)
        out.append(([bos] if add_bos else []) + ids + [eos])
    return out


# ----------------------------------------------------------------------------- the word LMs' batch sources


class WindowBatches:
    """Trainer batch source: shuffled (context, target) windows, ``batch(step, shard, shards)`` -> (B, n).

    The global batch of step ``s`` is rows ``[s G, (s+1) G)`` of a per-epoch permutation
    (``G = shards * batch_size``), seeded by ``(seed, epoch)``: deterministic and resumable.
    """

    def __init__(self, windows: np.ndarray, batch_size: int, seed: int = 0):
        if len(windows) < batch_size:
            raise DataError(f"{len(windows)} training windows is fewer than one batch of {batch_size}")
        self.windows = windows
        self.batch_size = batch_size
        self.seed = seed
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.windows))
        return self._perm

    def batch(self, step: int, shard: int = 0, shards: int = 1) -> Tensor:
        per_epoch = len(self.windows) // (self.batch_size * shards)
        if per_epoch == 0:
            raise DataError(f"{len(self.windows)} windows cannot fill {shards} x {self.batch_size} rows")
        epoch, within = divmod(step, per_epoch)
        start = (within * shards + shard) * self.batch_size
        return torch.from_numpy(self.windows[self._permutation(epoch)[start:start + self.batch_size]])


class WindowEval:
    """Evaluation source: all windows in order, in fixed-size chunks (split across ranks)."""

    def __init__(self, windows: np.ndarray, batch_size: int = 4096):
        self.windows = windows
        self.batch_size = batch_size

    def eval_batches(self, rank: int = 0, world: int = 1):
        for i, start in enumerate(range(0, len(self.windows), self.batch_size)):
            if i % world == rank:
                yield torch.from_numpy(self.windows[start:start + self.batch_size])


def bptt_documents(documents: list[list[list[int]]], bos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, doc_start): each document's sentences as ``<s> w_1 .. w_n </s>`` back to back.

    ``documents`` holds, per document, its sentences as ids ``w_1 .. w_n </s>``.
    """
    ids, starts = [], []
    for doc in documents:
        first = True
        for sent in doc:
            piece = np.concatenate([[bos_id], np.asarray(sent, dtype=np.int64)])
            flag = np.zeros(len(piece), dtype=bool)
            flag[0] = first
            first = False
            ids.append(piece)
            starts.append(flag)
    if not ids:
        raise DataError("no sentences in the documents")
    return np.concatenate(ids).astype(np.int64), np.concatenate(starts)


class BPTTStream:
    """Trainer batch source for truncated BPTT: ``batch(step, shard, shards)`` -> (B, T+1) ids.

    The stream is cut into ``shards * batch_size`` lanes; step ``s`` reads tokens
    ``[s T, s T + T]`` of each lane (so a lane's block continues its previous block), and shard
    ``i`` gets lanes ``[i B, (i+1) B)``. The first token of a document is flagged by adding
    ``vocab_size`` to its id (the objective decodes it into a reset mask); every lane restarts,
    flagged, at the beginning of each pass over the data.
    """

    def __init__(self, ids: np.ndarray, doc_start: np.ndarray, vocab_size: int, batch_size: int, bptt: int):
        self.ids = np.asarray(ids, dtype=np.int64) + vocab_size * np.asarray(doc_start, dtype=np.int64)
        self.vocab_size = vocab_size
        self.batch_size = batch_size
        self.bptt = bptt

    def _lanes(self, n_lanes: int) -> tuple[np.ndarray, int]:
        lane_len = (len(self.ids) - 1) // n_lanes
        steps = (lane_len - 1) // self.bptt
        if steps < 1:
            raise DataError(f"stream of {len(self.ids)} tokens is too short for {n_lanes} lanes x bptt {self.bptt}")
        return lane_len, steps

    def batch(self, step: int, shard: int = 0, shards: int = 1) -> Tensor:
        lanes = shards * self.batch_size
        lane_len, steps = self._lanes(lanes)
        within = step % steps
        lane = np.arange(shard * self.batch_size, (shard + 1) * self.batch_size)
        index = (lane * lane_len)[:, None] + within * self.bptt + np.arange(self.bptt + 1)[None, :]  # (B, T+1)
        out = self.ids[index].copy()
        if within == 0:  # a new pass: every lane starts afresh
            out[:, 0] = out[:, 0] % self.vocab_size + self.vocab_size
        return torch.from_numpy(out)

    def eval_batches(self, rank: int = 0, world: int = 1):
        """Every block of every lane in order (an evaluation pass over the stream)."""
        lanes = world * self.batch_size
        _, steps = self._lanes(lanes)
        for step in range(steps):
            yield self.batch(step, rank, world)


class Rows:
    """A fixed (N, T) row tensor as a Trainer batch source, reshuffled every epoch.

    Step ``s``, shard ``i`` of ``n`` is rows ``[(s·n + i)·B, … + B)`` of the epoch's permutation.
    """

    def __init__(self, rows: Tensor, batch_size: int, seed: int = 0) -> None:
        if rows.ndim != 2:
            raise UsageError(f"rows must be (N, T), got shape {tuple(rows.shape)}")
        if rows.shape[0] < batch_size:
            raise DataError(f"{rows.shape[0]} rows is fewer than batch_size={batch_size}")
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed

    def batch(self, step: int, shard: int = 0, shards: int = 1) -> Tensor:
        per_step = self.batch_size * shards
        steps_per_epoch = max(1, self.rows.shape[0] // per_step)
        epoch, within = divmod(step, steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.rows.shape[0])
        first = within * per_step + shard * self.batch_size
        return self.rows[torch.as_tensor(order[first:first + self.batch_size])]

    def eval_batches(self, rank: int = 0, world: int = 1):
        for first in range(rank * self.batch_size, self.rows.shape[0], self.batch_size * world):
            yield self.rows[first:first + self.batch_size]


def reversed_documents(documents: list[list[list[int]]], bos_id: int) -> list[list[list[int]]]:
    """The documents as a backward LM reads them: sentences in reverse order, each ``w_1 .. w_n </s>``
    turned into ``w_n .. w_1 <s>`` (so :func:`bptt_documents` with ``</s>`` as the start marker
    gives ``</s> w_n .. w_1 <s>``, the same length as the forward stream)."""
    return [[[*reversed(sent[:-1]), bos_id] for sent in reversed(doc)] for doc in reversed(documents)]


class StackedStreams:
    """Several equally long :class:`BPTTStream` read in lockstep (ELMo's forward and backward
    streams): ``batch(step, shard, shards)`` -> (B, k, T+1), ``eval_batches`` likewise."""

    def __init__(self, streams: Sequence[BPTTStream]):
        if len({len(s.ids) for s in streams}) != 1:
            raise DataError("stacked streams must have the same number of tokens")
        self.streams = list(streams)

    def batch(self, step: int, shard: int = 0, shards: int = 1) -> Tensor:
        return torch.stack([s.batch(step, shard, shards) for s in self.streams], dim=1)

    def eval_batches(self, rank: int = 0, world: int = 1):
        for blocks in zip(*(s.eval_batches(rank, world) for s in self.streams)):
            yield torch.stack(blocks, dim=1)
