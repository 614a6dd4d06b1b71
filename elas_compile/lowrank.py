"""LowRankLinear: W (out x in) stored as U (out x r) @ V (r x in), no bias."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def init_factors(u: torch.Tensor, v: torch.Tensor) -> None:
    """Random init for pre-training: each factor like an nn.Linear of its own shape
    (kaiming-uniform, a=sqrt(5)), so U·V has roughly the scale of a fresh dense linear."""
    nn.init.kaiming_uniform_(v, a=math.sqrt(5))
    nn.init.kaiming_uniform_(u, a=math.sqrt(5))


@torch.no_grad()
def svd_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-``rank`` factors of ``weight`` (truncated SVD, singular values split evenly)."""
    u, s, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    r = min(rank, s.numel())
    root = s[:r].sqrt()
    fu = torch.zeros(weight.shape[0], rank)
    fv = torch.zeros(rank, weight.shape[1])
    fu[:, :r] = u[:, :r] * root
    fv[:r] = root[:, None] * vh[:r]
    return fu, fv


class LowRankLinear(nn.Module):
    """y = U (V x)   (``form="plain"``, ELAS/LORO)   or   y = U silu(V x)   (``form="cola"``).

    Parameters ``u`` (out x r) and ``v`` (r x in); no bias.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, form: str = "plain",
                 device=None, dtype=None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank, self.form = in_features, out_features, rank, form
        kw = {"device": device, "dtype": dtype}
        self.u = nn.Parameter(torch.empty(out_features, rank, **kw))
        self.v = nn.Parameter(torch.empty(rank, in_features, **kw))
        init_factors(self.u, self.v)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, form: str, init: str) -> "LowRankLinear":
        w = linear.weight
        new = cls(linear.in_features, linear.out_features, rank, form, device=w.device, dtype=w.dtype)
        if init == "svd" and w.device.type != "meta":
            fu, fv = svd_factors(w, rank)
            with torch.no_grad():
                new.u.copy_(fu)
                new.v.copy_(fv)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(x, self.v)
        if self.form == "cola":
            h = F.silu(h)
        return F.linear(h, self.u)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, form={self.form}"
