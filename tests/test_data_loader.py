"""Train/validation split, the resumable rank-sharded sampler, validation batches."""
import pytest
import torch

from elas_compile.data import DataError
from elas_compile.data.loader import BatchSampler, eval_batches, split_tokens


def test_split_holds_out_the_tail():
    s = split_tokens(list(range(1000)), 0.1, 16)
    assert s.n_train == 900 and s.n_val == 100
    assert s.train[-1].item() == 899 and s.val[0].item() == 900
    assert split_tokens(list(range(1000)), 0.25, 16).n_val == 250


@pytest.mark.parametrize("n,frac", [(0, 0.1), (100, 0.1), (300, 0.01)])
def test_split_too_small(n, frac):
    with pytest.raises(DataError, match="empty|too small"):
        split_tokens(list(range(n)), frac, 64)


def test_sampler_is_a_function_of_the_step():
    tokens = torch.arange(10_000, dtype=torch.int32)
    a = BatchSampler(tokens.numel(), 32, 8, seed=1)
    b = BatchSampler(tokens.numel(), 32, 8, seed=1)
    steps = [0, 5, 100, 3, 5]  # any order: no hidden state
    for s in steps:
        assert torch.equal(a.batch(tokens, s), b.batch(tokens, s))
    x = a.batch(tokens, 0)
    assert x.shape == (8, 33) and x.dtype == torch.long
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(8, 32, dtype=torch.long))  # contiguous windows
    assert not torch.equal(a.batch(tokens, 0), BatchSampler(tokens.numel(), 32, 8, seed=2).batch(tokens, 0))


def test_sampler_epoch_covers_every_window_once():
    n, seq, bs = 32 * 40 + 1, 32, 8
    s = BatchSampler(n, seq, bs, seed=0)
    assert s.windows_per_epoch == 40
    starts = [x for step in range(5) for x in s.starts(step)]
    assert sorted(starts) == list(range(0, 40 * 32, 32))


def test_ranks_read_disjoint_windows():
    n = 64 * 100 + 1
    ranks = [BatchSampler(n, 64, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    single = BatchSampler(n, 64, 8, seed=0)
    for step in range(3):
        r0, r1 = ranks[0].starts(step), ranks[1].starts(step)
        assert not set(r0) & set(r1)
        assert r0 + r1 == single.starts(step)  # the global batch is the same


def test_eval_batches():
    val = torch.arange(1000, dtype=torch.int32)
    batches = eval_batches(val, 16, 4, max_batches=3)
    assert len(batches) == 3 and all(b.shape == (4, 17) for b in batches)
    assert batches[0][1, 0].item() == 16
    small = eval_batches(val[:100], 16, 4, max_batches=8)
    assert sum(b.shape[0] for b in small) == 6
