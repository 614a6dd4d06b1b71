"""Parameter and FLOP formulas, symbolic (sympy), for the layers elas_compile rewrites.

Symbols: d = hidden size, F = original intermediate width, F2 = new (ELAS) width, r = rank,
i / o = in / out features of a linear, E = experts of an experts module (1 for an MLP).
FLOPs count 2 per multiply-add of the matrix products (elementwise ops and bias adds are left
out); "2:4 FLOPs" halves the products whose input is 2:4 sparse. An experts module's FLOPs are
per routed (token, expert) pair: a token routed to k experts costs k times them.
"""
from __future__ import annotations

import sympy as sp

d, F, F2, r, i, o, E = sp.symbols("d F F2 r i o E", positive=True, integer=True)

# Original MLPs (one expert's, for experts), without biases.
MLP_PARAMS = {"gated": 3 * d * F, "fused": 3 * d * F, "plain": 2 * d * F}
# Bias lengths of each projection: up and gate are F wide, down d.
BIAS = {"up": F, "gate": F, "down": d}

# ELAS MLP: up = U (F2 x r) V (r x d), down = U (d x r) V (r x F2); biases (kept) on U's side.
ELAS_PARAMS = r * (d + F2) + r * (F2 + d)
ELAS_BIAS = {"up": F2, "down": d}
# The down projection's V factor (r x F2) multiplies the 2:4-sparse activation: half its work.
ELAS_SPARSE_PART = r * F2

LINEAR_PARAMS = i * o
LOWRANK_PARAMS = r * (i + o)


def flops_per_token(params: sp.Expr) -> sp.Expr:
    """Forward FLOPs per token of a stack of linears with ``params`` weights."""
    return 2 * params


def _biases(table: dict, info: dict) -> sp.Expr:
    return sum((table[name] for name in table if info.get(f"bias_{name}")), sp.Integer(0))


def mlp_numbers(info: dict) -> dict:
    """Numeric parameter and FLOP counts, before and after, of one rewritten MLP or experts module
    (``info`` is its ``elas_info``)."""
    kind = info["kind"].split("/")[-1]
    subs = {d: info["hidden"], F: info["intermediate"], F2: info["new_intermediate"], r: info["rank"],
            E: info.get("num_experts", 1)}
    before = E * (MLP_PARAMS[kind] + _biases(BIAS, info))
    after = E * (ELAS_PARAMS + _biases(ELAS_BIAS, info))
    after_flops = flops_per_token(ELAS_PARAMS)
    sparse_flops = after_flops - (flops_per_token(ELAS_SPARSE_PART) / 2 if info["sparsity"] else 0)
    return {
        "params_before": int(before.subs(subs)),
        "params_after": int(after.subs(subs)),
        "flops_before": int(flops_per_token(MLP_PARAMS[kind]).subs(subs)),
        "flops_after": int(after_flops.subs(subs)),
        "flops_after_24": int(sparse_flops.subs(subs)),
    }


def linear_numbers(in_features: int, out_features: int, rank: int, bias: bool = False) -> dict:
    subs = {i: in_features, o: out_features, r: rank}
    extra = o if bias else 0  # the bias is kept as it was
    return {
        "params_before": int((LINEAR_PARAMS + extra).subs(subs)),
        "params_after": int((LOWRANK_PARAMS + extra).subs(subs)),
        "flops_before": int(flops_per_token(LINEAR_PARAMS).subs(subs)),
        "flops_after": int(flops_per_token(LOWRANK_PARAMS).subs(subs)),
        "flops_after_24": int(flops_per_token(LOWRANK_PARAMS).subs(subs)),
    }
