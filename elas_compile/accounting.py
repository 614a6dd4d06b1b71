"""Parameter and FLOP formulas, symbolic (sympy), for the layers elas_compile rewrites.

Symbols: d = hidden size, F = original intermediate width, F2 = new (ELAS) width, r = rank,
i / o = in / out features of a linear. FLOPs count 2 per multiply-add of the matrix products
(elementwise ops are left out); "2:4 FLOPs" halves the products whose input is 2:4 sparse.
"""
from __future__ import annotations

import sympy as sp

d, F, F2, r, i, o = sp.symbols("d F F2 r i o", positive=True, integer=True)

# Original MLPs (bias terms only where the model had biases).
MLP_PARAMS = {"gated": 3 * d * F, "fused": 3 * d * F, "plain": 2 * d * F}
MLP_BIAS = {"gated": 2 * F + d, "fused": 2 * F + d, "plain": F + d}

# ELAS MLP: up = U (F2 x r) V (r x d), down = U (d x r) V (r x F2), no bias.
ELAS_PARAMS = r * (d + F2) + r * (F2 + d)
# The down projection's V factor (r x F2) multiplies the 2:4-sparse activation: half its work.
ELAS_SPARSE_PART = r * F2

LINEAR_PARAMS = i * o
LOWRANK_PARAMS = r * (i + o)


def flops_per_token(params: sp.Expr) -> sp.Expr:
    """Forward FLOPs per token of a stack of bias-free linears with ``params`` weights."""
    return 2 * params


def mlp_numbers(info: dict) -> dict:
    """Numeric parameter and FLOP counts, before and after, of one rewritten MLP."""
    subs = {d: info["hidden"], F: info["intermediate"], F2: info["new_intermediate"], r: info["rank"]}
    before = MLP_PARAMS[info["kind"]] + (MLP_BIAS[info["kind"]] if info["bias"] else 0)
    after_flops = flops_per_token(ELAS_PARAMS)
    sparse_flops = after_flops - (flops_per_token(ELAS_SPARSE_PART) / 2 if info["sparsity"] else 0)
    return {
        "params_before": int(before.subs(subs)),
        "params_after": int(ELAS_PARAMS.subs(subs)),
        "flops_before": int(flops_per_token(MLP_PARAMS[info["kind"]]).subs(subs)),
        "flops_after": int(after_flops.subs(subs)),
        "flops_after_24": int(sparse_flops.subs(subs)),
    }


def linear_numbers(in_features: int, out_features: int, rank: int) -> dict:
    subs = {i: in_features, o: out_features, r: rank}
    return {
        "params_before": int(LINEAR_PARAMS.subs(subs)),
        "params_after": int(LOWRANK_PARAMS.subs(subs)),
        "flops_before": int(flops_per_token(LINEAR_PARAMS).subs(subs)),
        "flops_after": int(flops_per_token(LOWRANK_PARAMS).subs(subs)),
        "flops_after_24": int(flops_per_token(LOWRANK_PARAMS).subs(subs)),
    }
