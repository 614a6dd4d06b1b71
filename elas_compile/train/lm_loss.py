"""Next-token cross-entropy of a causal LM, and the module that compiles it with the model."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def next_token_loss(logits: torch.Tensor, batch: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``logits`` (for ``batch[:, :-1]``) against ``batch[:, 1:]``, in fp32."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                           reduction=reduction)


class NextTokenLoss(nn.Module):
    """A causal LM and its next-token cross-entropy as one module: compiled together, the logits'
    fp32 upcast, log-softmax and loss (and their backward) fuse into a few kernels instead of
    writing fp32 logits and their log-softmax to memory (16k tokens x 32k vocabulary: 2 GB each).
    Called with a ``[B, T+1]`` token batch; ``reduction`` as in :func:`next_token_loss`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return next_token_loss(self.model(input_ids=batch[:, :-1], use_cache=False).logits, batch, reduction)
