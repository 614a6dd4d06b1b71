"""elas_compile.merge: an ELAS model as plain PyTorch, for serving stacks that know nothing of ELAS.

Each low-rank pair ``U·V`` becomes one dense ``nn.Linear`` of weight ``U @ V`` (computed in at
least float32, stored in the factors' dtype): every ELAS MLP becomes a :class:`ReLU2MLP`
``down(mask(relu(up(x)) ** 2))`` and every factorized attention projection an ``nn.Linear``.
Nothing of ``torch.ops.elas`` remains, so ``torch.export``, ONNX and other runtimes take it.

The 2:4 step is **kept**, as a mask written in plain torch ops, in every MLP that ran 2:4 when
merged: the model was trained with the pruned activations at zero, so dropping the mask would
change its outputs (by how much depends on the model; nothing guarantees it is small). The
merged model computes the ELAS model's function up to float rounding (``U @ V`` is rounded once
instead of ``V x`` then ``U (V x)``), on dense GEMMs: the mask saves no time there. The
squared-ReLU, non-gated MLP is no transformers architecture of the original family, so the
result is an ``nn.Module`` for ``state_dict``/``torch.export``, not a ``save_pretrained`` folder.

CoLA's form ``U silu(V x)`` is no linear map and cannot be merged: :func:`merge` refuses it, and
models with ELAS routed experts (not merged yet).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from elas_compile.errors import ELASError
from elas_compile.kernels.reference import sparsify24_mask
from elas_compile.lowrank import LowRankLinear


class ReLU2MLP(nn.Module):
    """``down(relu(up(x)) ** 2)`` with dense projections; with ``sparse_24`` the squared ReLU keeps
    the 2 largest of every 4 features per token (ties: the lower index), as ELAS ran it."""

    def __init__(self, up_proj: nn.Linear, down_proj: nn.Linear, sparse_24: bool) -> None:
        super().__init__()
        self.up_proj, self.down_proj, self.sparse_24 = up_proj, down_proj, sparse_24

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up_proj(x)) ** 2
        if self.sparse_24:
            h = torch.where(sparsify24_mask(h), h, torch.zeros((), dtype=h.dtype, device=h.device))
        return self.down_proj(h)

    def extra_repr(self) -> str:
        return f"sparse_24={self.sparse_24}"


@torch.no_grad()
def merged_linear(lowrank: LowRankLinear, where: str) -> nn.Linear:
    """The ``nn.Linear`` computing ``lowrank``'s map with the one weight ``U @ V``."""
    if lowrank.form != "plain":
        raise ELASError(f"'{where}' is of the CoLA form U·silu(V·x), which no single matrix computes; merge only "
                        "merges lowrank_form='plain' models (export a CoLA model as it is).")
    u, bias = lowrank.u, getattr(lowrank, "bias", None)
    linear = nn.Linear(lowrank.in_features, lowrank.out_features, bias=bias is not None, device=u.device, dtype=u.dtype)
    exact = torch.promote_types(u.dtype, torch.float32)  # at least float32 for the product
    linear.weight.copy_((u.to(exact) @ lowrank.v.to(exact)).to(u.dtype))
    if bias is not None:
        linear.bias.copy_(bias)
    return linear


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent_path), name, new)


def merge(model: nn.Module) -> nn.Module:
    """Replace, in place, every ELAS MLP of ``model`` by a :class:`ReLU2MLP` and every other
    ``LowRankLinear`` by an ``nn.Linear`` (module docstring); returns ``model``, which then holds
    no ELAS module. The mode of each MLP at the time of the call decides whether its mask is kept."""
    from elas_compile.api import elas_mlps
    from elas_compile.passes.model.rewrite_mlp import ELASMLP

    mlps = elas_mlps(model)
    if not mlps:
        raise ELASError(f"merge() got a {type(model).__name__} without ELAS MLPs; it merges a model rewritten by "
                        "elas_compile.apply.")
    experts = [path for path, m in mlps if not isinstance(m, ELASMLP)]
    if experts:
        raise ELASError(f"merge() merges ELAS MLPs and low-rank linears, not routed experts ({', '.join(experts[:3])}"
                        f"{', ...' if len(experts) > 3 else ''}); export an MoE model as it is.")
    mlp_paths = {path for path, _ in mlps}
    plan: list[tuple[str, nn.Module]] = []
    for path, mlp in mlps:
        up = merged_linear(mlp.up_proj, f"{path}.up_proj")
        down = merged_linear(mlp.down_proj, f"{path}.down_proj")
        plan.append((path, ReLU2MLP(up, down, sparse_24=mlp.sparsity_mode != "dense").train(mlp.training)))
    for path, module in model.named_modules():
        if isinstance(module, LowRankLinear) and not any(path.startswith(p + ".") for p in mlp_paths):
            plan.append((path, merged_linear(module, path)))
    for path, new in plan:  # every replacement was built first: an error leaves the model unchanged
        _replace(model, path, new)
    if hasattr(model, "elas_config"):
        del model.elas_config
    return model
