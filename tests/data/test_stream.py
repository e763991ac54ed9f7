from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.data.stream import BPTTBatches, LMBlocks, PackedSequences, SentenceRows, TokenStream, write_stream
from lmlab.errors import DataError


def _docs():
    rng = np.random.default_rng(0)
    return [list(rng.integers(3, 300, size=n)) + [2] for n in rng.integers(5, 40, size=60)]


def test_memmap_round_trip(tmp_path):
    docs = _docs()
    stream = write_stream(tmp_path / "s", docs, vocab_size=300)
    assert stream.ids.dtype == np.uint16 and stream.n_documents == 60
    for i in (0, 17, 59):
        assert stream.document(i).tolist() == docs[i]
    big = write_stream(tmp_path / "b", [[70000, 1]], vocab_size=70001)
    assert big.ids.dtype == np.uint32 and big.document(0).tolist() == [70000, 1]
    with pytest.raises(DataError, match="out of range"):
        write_stream(tmp_path / "c", [[5]], vocab_size=5)


def test_truncated_stream_is_an_error(tmp_path):
    write_stream(tmp_path / "s", _docs(), vocab_size=300)
    data = (tmp_path / "s" / "ids.bin").read_bytes()
    (tmp_path / "s" / "ids.bin").write_bytes(data[:-4])
    with pytest.raises(DataError, match="truncated"):
        TokenStream(tmp_path / "s")
    with pytest.raises(DataError, match="not a token stream"):
        TokenStream(tmp_path / "nothing")


def test_lm_blocks_shapes_determinism_and_shards(tmp_path):
    stream = write_stream(tmp_path / "s", _docs(), vocab_size=300)
    blocks = LMBlocks(stream.ids, seq_len=16, batch_size=4, seed=3)
    b0 = blocks.batch(0)
    assert b0.shape == (4, 17) and b0.dtype == torch.int64
    assert torch.equal(b0, LMBlocks(stream.ids, 16, 4, seed=3).batch(0))  # deterministic
    ids = np.asarray(stream.ids)
    for row in b0:  # every row is a contiguous slice of the stream
        starts = [s for s in range(0, len(ids) - 16, 16) if np.array_equal(ids[s:s + 17], row.numpy())]
        assert starts
    halves = [blocks.batch(5, shard=r, shards=2) for r in range(2)]
    assert torch.equal(torch.cat(halves), blocks.batch(5))
    unique = LMBlocks(np.arange(1000), seq_len=16, batch_size=4, seed=3)
    firsts = torch.cat([unique.batch(s)[:, 0] for s in range(unique.steps_per_epoch)]).numpy()
    assert len(set(firsts.tolist())) == len(firsts)  # no block twice in one epoch
    assert (firsts % 16 == 0).all()
    assert not torch.equal(unique.batch(0), unique.batch(unique.steps_per_epoch))  # reshuffled


def test_bptt_batches_are_consecutive(tmp_path):
    docs = _docs()
    stream = write_stream(tmp_path / "s", docs, vocab_size=300)
    starts = np.zeros(len(stream), dtype=bool)
    starts[stream.offsets[:-1]] = True
    bptt = BPTTBatches(stream.ids, batch_size=3, bptt=8, doc_starts=starts)
    (x0, s0), (x1, s1) = bptt.batch(0), bptt.batch(1)
    assert x0.shape == (3, 9) and s0.shape == (3, 8)
    assert torch.equal(x0[:, -1], x1[:, 0])  # the next window continues each column
    col = np.asarray(stream.ids[: bptt.column_len])
    assert np.array_equal(x0[0].numpy(), col[:9])
    assert s0[0, 0]  # epoch start resets every column
    assert np.array_equal(s1[0].numpy(), starts[8:16])


def test_packed_and_sentence_rows(tmp_path):
    stream = write_stream(tmp_path / "s", _docs(), vocab_size=300)
    packed = PackedSequences(stream, seq_len=32, batch_size=4)
    ids, doc_ids = packed.batch(0)
    assert ids.shape == doc_ids.shape == (4, 32)
    assert (doc_ids[doc_ids >= 0][:1] == 0).all()
    rows = SentenceRows(stream, max_len=20, batch_size=5, pad_id=0)
    ids, lengths = rows.batch(2)
    assert ids.shape[0] == 5 and ids.shape[1] == lengths.max() <= 20
    for row, n in zip(ids, lengths):
        assert (row[n:] == 0).all() and row[n - 1] != 0 or n == 20
