"""LowRankLinear: W (out x in) stored as U (out x r) @ V (r x in), with an optional bias."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from elas_compile.errors import ELASError


def init_factors(u: torch.Tensor, v: torch.Tensor) -> None:
    """Random init for pre-training: each factor like an nn.Linear of its own shape
    (kaiming-uniform, a=sqrt(5)), so U·V has roughly the scale of a fresh dense linear."""
    nn.init.kaiming_uniform_(v, a=math.sqrt(5))
    nn.init.kaiming_uniform_(u, a=math.sqrt(5))


def meta_svd_message(what: str) -> str:
    """The error of ``init="svd"`` on weights that hold no values (built on the meta device)."""
    return (f"init='svd' factorizes the existing weights, but {what} is on the meta device (no values). "
            "Load the weights first (to_empty + load_state_dict, then apply), or apply with "
            "init='random' and initialise after to_empty (model.init_weights() or reset_parameters(); "
            "docs/checkpoints.md).")


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

    Parameters ``u`` (out x r) and ``v`` (r x in); ``bias`` (out) when built with ``bias=True``
    (it is added after U, where the factorized linear had it), else None.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, form: str = "plain",
                 device=None, dtype=None, bias: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank, self.form = in_features, out_features, rank, form
        kw = {"device": device, "dtype": dtype}
        self.u = nn.Parameter(torch.empty(out_features, rank, **kw))
        self.v = nn.Parameter(torch.empty(rank, in_features, **kw))
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The random init of pre-training (:func:`init_factors`): what the constructor does, and
        what meta-device flows call after ``to_empty`` (FSDP2's recipe, ``elas_compile``'s hook in
        transformers' ``init_weights``)."""
        init_factors(self.u, self.v)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @classmethod
    def from_linear(cls, linear: nn.Module, rank: int, form: str, init: str) -> "LowRankLinear":
        """The factorized twin of ``linear`` (an nn.Linear, or transformers' Conv1D whose weight is
        stored in x out); its bias, if any, is copied."""
        w = linear.weight if isinstance(linear, nn.Linear) else linear.weight.t()
        out_features, in_features = w.shape
        if init == "svd" and w.is_meta:
            raise ELASError(meta_svd_message(f"a {in_features} -> {out_features} nn.Linear"))
        bias = getattr(linear, "bias", None)
        new = cls(in_features, out_features, rank, form, device=w.device, dtype=w.dtype, bias=bias is not None)
        with torch.no_grad():
            if init == "svd":
                fu, fv = svd_factors(w, rank)
                new.u.copy_(fu)
                new.v.copy_(fv)
            if bias is not None:
                new.bias.copy_(bias)
        return new

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the factors were renamed (transformers 5.x renames any
        # '.weight_v' key to a weight-norm parametrization, so the old names could not stay)
        for old, name in (("weight_u", "u"), ("weight_v", "v")):
            if prefix + old in state_dict and prefix + name not in state_dict:
                state_dict[prefix + name] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(x, self.v)
        if self.form == "cola":
            h = F.silu(h)
        return F.linear(h, self.u, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
                f"form={self.form}, bias={self.bias is not None}")
