"""Token streams -> train/validation split -> batches.

The sampler is a pure function of (seed, step, rank): the batch of step ``s`` is the same whether
the run went straight through or was resumed, and ranks of a data-parallel run read disjoint
windows (``rank``/``world_size``), so ``--parallel ddp|fsdp`` needs no other sampler.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch

from elas_compile.data import DataError
from elas_compile.data.shards import TokenStream


@dataclass
class TokenSplit:
    """The training tokens and the held-out validation tokens."""

    train: TokenStream
    val: TokenStream

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_val(self) -> int:
        return len(self.val)

    def check(self, seq_len: int) -> "TokenSplit":
        """Both parts must hold at least one window of ``seq_len + 1`` tokens, else a
        :class:`DataError` says how many tokens there are and how to fix it."""
        need = seq_len + 1
        if self.n_train + self.n_val == 0:
            raise DataError("the corpus is empty after tokenization")
        if self.n_val < need or self.n_train < need:
            raise DataError(
                f"the corpus is too small: {self.n_train + self.n_val} tokens, split {self.n_train} train / "
                f"{self.n_val} validation, and each part needs at least --seq-len + 1 = {need} tokens; "
                f"add data, lower --seq-len or change --val-fraction"
            )
        return self


def split_tokens(ids, val_fraction: float, seq_len: int) -> TokenSplit:
    """Hold out the last ``val_fraction`` of the tokens (a :class:`TokenStream`, or ids in memory)
    for validation."""
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    stream = ids if isinstance(ids, TokenStream) else TokenStream.of(ids)
    n = len(stream)
    n_train = n - int(round(n * val_fraction))
    return TokenSplit(train=stream.slice(0, n_train), val=stream.slice(n_train, n)).check(seq_len)


def split_streams(streams: Dict[str, TokenStream], val_fraction: float, seq_len: int) -> TokenSplit:
    """The split of a token store: its own ``train``/``val`` streams, or the tail of ``all``."""
    if "all" in streams:
        return split_tokens(streams["all"], val_fraction, seq_len)
    return TokenSplit(train=streams["train"], val=streams["val"]).check(seq_len)


class BatchSampler:
    """Random windows of ``seq_len + 1`` tokens, epoch by epoch, as a pure function of the step.

    Each epoch cuts the training tokens into ``seq_len``-long windows at a random offset and visits
    them in a random order (both drawn from ``seed`` and the epoch number). Step ``s`` of a run with
    ``world_size`` ranks consumes global windows ``[s*G, (s+1)*G)``, ``G = batch_size*world_size``;
    rank ``r`` takes its own ``batch_size`` of them.
    """

    def __init__(self, n_tokens: int, seq_len: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        if n_tokens < seq_len + 1:
            raise DataError(f"need at least {seq_len + 1} training tokens, have {n_tokens}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.n_tokens, self.seq_len, self.batch_size = n_tokens, seq_len, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.windows_per_epoch = (n_tokens - 1) // seq_len
        self._slack = (n_tokens - 1) - self.windows_per_epoch * seq_len
        self._epochs: Dict[int, torch.Tensor] = {}

    def _epoch_starts(self, epoch: int) -> torch.Tensor:
        starts = self._epochs.get(epoch)
        if starts is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            offset = int(torch.randint(0, self._slack + 1, (1,), generator=g))
            perm = torch.randperm(self.windows_per_epoch, generator=g)
            starts = offset + perm * self.seq_len
            if len(self._epochs) > 4:  # keep memory flat over long runs
                self._epochs.clear()
            self._epochs[epoch] = starts
        return starts

    def starts(self, step: int) -> List[int]:
        """Start offsets of this rank's windows at ``step``."""
        first = (step * self.world_size + self.rank) * self.batch_size
        out = []
        for i in range(first, first + self.batch_size):
            epoch, pos = divmod(i, self.windows_per_epoch)
            out.append(int(self._epoch_starts(epoch)[pos]))
        return out

    def epoch_of(self, step: int) -> float:
        """How many passes over the training tokens ``step`` steps make (fractional)."""
        return step * self.batch_size * self.world_size / self.windows_per_epoch

    def batch(self, tokens: TokenStream, step: int) -> torch.Tensor:
        """``[batch_size, seq_len + 1]`` int64 token ids for ``step``."""
        rows = [tokens.read(s, s + self.seq_len + 1) for s in self.starts(step)]
        return torch.from_numpy(np.stack(rows))


def eval_batches(tokens: TokenStream, seq_len: int, batch_size: int, max_batches: int) -> List[torch.Tensor]:
    """Non-overlapping validation windows spread evenly over the held-out split (consecutive when
    it holds no more than are asked for; spread, a large split is not judged by its first
    package alone), grouped into batches (the last may be smaller); at most ``max_batches``."""
    available = (len(tokens) - 1) // seq_len
    n_windows = min(available, max_batches * batch_size)
    picks = np.arange(n_windows) * available // max(n_windows, 1)
    windows = torch.from_numpy(np.stack([tokens.read(int(i) * seq_len, int(i) * seq_len + seq_len + 1)
                                         for i in picks]))
    return list(windows.split(batch_size))
