"""The linear-chain CRF against brute force: log Z, the best sequence and its score, over all L^n label sequences."""

from __future__ import annotations

import itertools

import pytest
import torch

from lmlab.tasks.tagging import LinearChainCRF, pack

torch.set_num_threads(1)


def _brute_score(crf, emissions, tags):
    total = crf.start[tags[0]] + emissions[0, tags[0]]
    for i in range(1, len(tags)):
        total = total + crf.transitions[tags[i - 1], tags[i]] + emissions[i, tags[i]]
    return total + crf.end[tags[-1]]


def _crf(L, seed):
    torch.manual_seed(seed)
    crf = LinearChainCRF(L)
    with torch.no_grad():  # larger than the initialisation, so the transitions matter
        for p in crf.parameters():
            p.normal_(0, 1.0)
    return crf.double()


@pytest.mark.parametrize("L,n,seed", [(2, 1, 0), (3, 4, 1), (4, 3, 2), (3, 5, 3)])
def test_log_partition_and_viterbi_equal_brute_force(L, n, seed):
    crf = _crf(L, seed)
    lengths = [n, max(1, n - 1), max(1, n - 2)]
    emissions = torch.randn(len(lengths), n, L, dtype=torch.float64) * 2
    mask = torch.arange(n)[None] < torch.tensor(lengths)[:, None]
    log_z = crf.log_partition(emissions, mask)
    paths, best_scores = crf.viterbi(emissions, mask)
    with torch.no_grad():
        for b, length in enumerate(lengths):
            e = emissions[b, :length]
            scores = {seq: float(_brute_score(crf, e, seq)) for seq in itertools.product(range(L), repeat=length)}
            expected = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0)
            assert float(log_z[b]) == pytest.approx(float(expected), abs=1e-10)
            best = max(scores, key=scores.get)
            assert tuple(paths[b]) == best
            assert float(best_scores[b]) == pytest.approx(scores[best], abs=1e-10)
            # score() of every sequence, padded to n with garbage past the row's end
            for seq in list(scores)[:5]:
                tags = torch.tensor([*seq, *[L - 1] * (n - length)])[None]
                got = crf.score(emissions[b:b + 1], tags, mask[b:b + 1])
                assert float(got) == pytest.approx(scores[seq], abs=1e-10)


def test_score_by_hand():
    crf = LinearChainCRF(2).double()
    with torch.no_grad():
        crf.start.copy_(torch.tensor([0.5, -1.0]))
        crf.end.copy_(torch.tensor([0.0, 2.0]))
        crf.transitions.copy_(torch.tensor([[0.1, 0.2], [0.3, 0.4]]))
    emissions = torch.tensor([[[1.0, 0.0], [0.0, 3.0], [2.0, 1.0]]], dtype=torch.float64)
    with torch.no_grad():
        # y = (0, 1, 1): start 0.5 + E 1 + A[0,1] 0.2 + E 3 + A[1,1] 0.4 + E 1 + end 2 = 8.1
        assert float(crf.score(emissions, torch.tensor([[0, 1, 1]]), torch.ones(1, 3))) == pytest.approx(8.1)
        # P(y | x) of every sequence sums to 1
        total = sum(torch.exp(-crf.nll(emissions, torch.tensor([seq]), torch.ones(1, 3)))
                    for seq in itertools.product(range(2), repeat=3))
    assert float(total) == pytest.approx(1.0, abs=1e-12)


def test_empty_rows_score_zero_and_gradients_flow():
    crf = _crf(3, 4)
    emissions = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    nll = crf.nll(emissions, torch.tensor([[0, 2, 1, 0], [0, 0, 0, 0]]), mask)
    assert float(nll[1].detach()) == 0.0 and float(nll[0].detach()) > 0
    nll.sum().backward()
    assert emissions.grad[0, :3].abs().sum() > 0 and emissions.grad[0, 3].abs().sum() == 0
    assert emissions.grad[1].abs().sum() == 0


def test_pack_moves_chosen_positions_to_the_front():
    values = torch.arange(12).reshape(2, 6)
    positions = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    packed, mask = pack(values, positions)
    assert packed[0].tolist() == [1, 3, 4] and packed[1, :1].tolist() == [6]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
