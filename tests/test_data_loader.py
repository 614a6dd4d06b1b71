"""Train/validation split, the resumable rank-sharded sampler, validation batches."""
import pytest
import torch

from elas_compile.data import DataError
from elas_compile.data.loader import BatchSampler, eval_batches, split_tokens
from elas_compile.data.shards import TokenStream


def test_split_holds_out_the_tail():
    s = split_tokens(list(range(1000)), 0.1, 16)
    assert s.n_train == 900 and s.n_val == 100
    assert s.train.read(899, 900)[0] == 899 and s.val.read(0, 1)[0] == 900
    assert split_tokens(list(range(1000)), 0.25, 16).n_val == 250


@pytest.mark.parametrize("n,frac", [(0, 0.1), (100, 0.1), (300, 0.01)])
def test_split_too_small(n, frac):
    with pytest.raises(DataError, match="empty|too small"):
        split_tokens(list(range(n)), frac, 64)


def test_sampler_is_a_function_of_the_step():
    tokens = TokenStream.of(torch.arange(10_000, dtype=torch.int32))
    a = BatchSampler(len(tokens), 32, 8, seed=1)
    b = BatchSampler(len(tokens), 32, 8, seed=1)
    steps = [0, 5, 100, 3, 5]  # any order: no hidden state
    for s in steps:
        assert torch.equal(a.batch(tokens, s), b.batch(tokens, s))
    x = a.batch(tokens, 0)
    assert x.shape == (8, 33) and x.dtype == torch.long
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(8, 32, dtype=torch.long))  # contiguous windows
    assert not torch.equal(a.batch(tokens, 0), BatchSampler(len(tokens), 32, 8, seed=2).batch(tokens, 0))


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
    val = TokenStream.of(torch.arange(1000, dtype=torch.int32))
    small = eval_batches(TokenStream.of(torch.arange(100)), 16, 4, max_batches=8)
    assert sum(b.shape[0] for b in small) == 6 and small[0][1, 0].item() == 16  # all, consecutive
    batches = eval_batches(val, 16, 4, max_batches=3)
    assert len(batches) == 3 and all(b.shape == (4, 17) for b in batches)
    starts = torch.cat(batches)[:, 0].tolist()
    assert starts[0] == 0 and starts[-1] > 850  # spread over the whole split, not its first 12 windows
    assert all(s % 16 == 0 for s in starts) and len(set(starts)) == 12  # whole, distinct windows


def test_batches_read_across_shards():
    """A window that spans two shard files reads the same ids as one array would."""
    import numpy as np

    ids = np.arange(5000)
    stream = TokenStream([ids[:1234].astype(np.uint16), ids[1234:4000].astype(np.uint16), ids[4000:]])
    whole = TokenStream.of(ids)
    sampler = BatchSampler(len(stream), 64, 8, seed=0)
    for step in range(20):
        assert torch.equal(sampler.batch(stream, step), sampler.batch(whole, step))
    assert stream.slice(1200, 1300).read(0, 100).tolist() == list(range(1200, 1300))
