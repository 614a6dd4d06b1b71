"""Token ids -> train/validation split -> batches.

The sampler is a pure function of (seed, step, rank): the batch of step ``s`` is the same whether
the run went straight through or was resumed, and ranks of a data-parallel run read disjoint
windows (``rank``/``world_size``), so ``--parallel ddp|fsdp`` needs no other sampler.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch

from elas_compile.data import DataError


@dataclass
class TokenSplit:
    """The token stream, cut into a training part and a held-out validation tail."""

    train: torch.Tensor  # 1-D int32
    val: torch.Tensor  # 1-D int32

    @property
    def n_train(self) -> int:
        return int(self.train.numel())

    @property
    def n_val(self) -> int:
        return int(self.val.numel())


def split_tokens(ids: Sequence[int], val_fraction: float, seq_len: int) -> TokenSplit:
    """Hold out the last ``val_fraction`` of the tokens for validation.

    Both parts must hold at least one window of ``seq_len + 1`` tokens, else a :class:`DataError`
    says how many tokens there are and how to fix it."""
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    n = len(ids)
    need = seq_len + 1
    if n == 0:
        raise DataError("the corpus is empty after tokenization")
    n_val = int(round(n * val_fraction))
    n_train = n - n_val
    if n_val < need or n_train < need:
        raise DataError(
            f"the corpus is too small: {n} tokens, split {n_train} train / {n_val} validation, "
            f"and each part needs at least --seq-len + 1 = {need} tokens; "
            f"add data, lower --seq-len or change --val-fraction"
        )
    t = torch.tensor(ids, dtype=torch.int32)
    return TokenSplit(train=t[:n_train].clone(), val=t[n_train:].clone())


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

    def batch(self, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """``[batch_size, seq_len + 1]`` int64 token ids for ``step``."""
        idx = torch.tensor(self.starts(step)).unsqueeze(1) + torch.arange(self.seq_len + 1)
        return tokens[idx].long()


def eval_batches(tokens: torch.Tensor, seq_len: int, batch_size: int, max_batches: int) -> List[torch.Tensor]:
    """Consecutive, non-overlapping validation windows from the start of the held-out split,
    grouped into batches (the last may be smaller); at most ``max_batches`` batches."""
    n_windows = min((tokens.numel() - 1) // seq_len, max_batches * batch_size)
    starts = torch.arange(n_windows) * seq_len
    idx = starts.unsqueeze(1) + torch.arange(seq_len + 1)
    windows = tokens[idx].long()
    return list(windows.split(batch_size))
