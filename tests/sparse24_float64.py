"""A float64 reference of the 2:4 backward (issue 21) for the property tests, written apart from
``kernels/reference.py``: selection by a stable sort instead of rank counting, dense columns by a
plain Python sort. Also the operands the properties draw (CPU tensors; the GPU tests move them)
and the checks the CPU and GPU property tests share (test_sparse24_backward_properties*.py).

Rule (docs/kernels.md): in every group of 4 keep the 2 entries of largest |x|, the lower index
winning ties (-0.0 ties 0.0; an all-zero group keeps positions 0 and 1). Along tokens, a token
count that is not a multiple of 4 ends in a group padded with zero tokens. Weight gradients of
``masked-tokens24``: aᵀ·b with a 2:4 along tokens, except the round(fraction * F) columns that
drop the most nonzeros (lower column first among equals), whose rows are the exact product.
"""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from elas_compile.kernels.cslt_layout import decompress24_reference, unpack24_reference, values_numel

UNIT = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}  # unit roundoff of one rounding
SUBNORMAL_STEP = {torch.bfloat16: 2.0**-133, torch.float16: 2.0**-24}  # below the normal range
DTYPES = list(UNIT)
FRACTIONS = st.sampled_from([0.0, 0.05, 0.1, 0.5, 1.0]) | st.floats(0.0, 1.0)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int16)


def pad_rows(t: torch.Tensor, multiple: int) -> torch.Tensor:
    """``t`` with zero rows appended up to a multiple of ``multiple`` rows."""
    pad = -t.shape[0] % multiple
    return torch.cat([t, t.new_zeros(pad, *t.shape[1:])]) if pad else t


def top2_of_4(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the kept entries of every group of 4 along the last dimension."""
    groups = x.abs().reshape(*x.shape[:-1], -1, 4)
    order = torch.sort(groups, dim=-1, descending=True, stable=True).indices  # equals keep their order
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order[..., :2], True)
    return keep.reshape(x.shape)


def kept_positions(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) kept position in every group of 4 along the last dimension of ``keep``."""
    groups = keep.reshape(*keep.shape[:-1], -1, 4)
    pos = torch.arange(4, device=keep.device)
    first = torch.where(groups, pos, 4).amin(-1)
    second = torch.where(groups, pos, -1).amax(-1)
    return first, second


def tokens24_keep(a: torch.Tensor) -> torch.Tensor:
    """Kept mask of ``a`` (tokens x F) 2:4 along tokens, for the zero-padded tokens too."""
    return top2_of_4(pad_rows(a, 4).t()).t()


def tokens24_select(a: torch.Tensor) -> torch.Tensor:
    """``a`` (tokens x F) with every feature column 2:4 along tokens."""
    keep = tokens24_keep(a)[: a.shape[0]]
    return torch.where(keep, a, torch.zeros((), dtype=a.dtype, device=a.device))


def tokens24_dropped(a: torch.Tensor) -> list[int]:
    """Per feature column: the nonzeros the 2:4 step along tokens drops."""
    nnz = (pad_rows(a, 4) != 0).reshape(-1, 4, a.shape[1]).sum(1)
    return (nnz - 2).clamp_min(0).sum(0).tolist()


def dense_columns(dropped: list[int], fraction: float) -> list[int]:
    k = int(round(fraction * len(dropped)))
    return sorted(range(len(dropped)), key=lambda j: (-dropped[j], j))[:k]


def split_weight_grad(a: torch.Tensor, b: torch.Tensor, fraction: float) -> torch.Tensor:
    """aᵀ·b (F x r) of ``masked-tokens24`` in float64."""
    a, b = a.double(), b.double()
    out = tokens24_select(a).t() @ b
    dense = dense_columns(tokens24_dropped(a), fraction)
    out[dense] = a[:, dense].t() @ b
    return out


def assert_within(got: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor, what: str) -> None:
    """|got - ref| <= bound elementwise (all float64)."""
    err = (got.double().cpu() - ref.cpu()).abs()
    bound = bound.cpu()
    bad = err > bound
    if bad.any():
        i = bad.flatten().nonzero()[0].item()
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.numel()} entries off, the first by "
                             f"{err.flatten()[i].item():.3g} against a bound of {bound.flatten()[i].item():.3g}")


def assert_weight_grad(got: torch.Tensor, a: torch.Tensor, b: torch.Tensor, fraction: float, what: str) -> None:
    """``got`` is the float64 split product up to float32 accumulation and one rounding to b's
    dtype: 2 u (|a|ᵀ|b| over the same selection) per entry, or one step where it is subnormal."""
    ref = split_weight_grad(a, b, fraction)
    bound = 2 * UNIT[b.dtype] * split_weight_grad(a.double().abs(), b.double().abs(), fraction)
    assert_within(got, ref, bound + SUBNORMAL_STEP[b.dtype], what)


# ---------------------------------------------------------------------------------------------
# Operands: tokens x features like S (relu² of a Gaussian, 2:4 along features) or like dy (signed
# values at S's nonzeros), "exact" (at most 2 nonzeros in every group of 4 tokens of every
# feature) or "mixed": columns of every kind below, each kind at least once.

COLUMN_KINDS = ("as-drawn", "exact", "dense", "zero", "ties", "equal")


def _exact(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    m, f = x.shape
    r = torch.rand(pad_rows(x, 4).shape, generator=g).reshape(-1, 4, f)
    keep = (r.argsort(1).argsort(1) < 2).reshape(-1, f)[:m]
    return x * keep


def operand(m: int, f: int, like: str, pattern: str, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y2 = torch.relu(torch.randn(m, f, generator=g, dtype=torch.float64)) ** 2
    x = y2 * top2_of_4(y2)
    if like == "dy":
        x = torch.randn(m, f, generator=g, dtype=torch.float64) * (x != 0)
    if pattern == "exact":
        return _exact(x, g).to(dtype)
    kinds = torch.randint(len(COLUMN_KINDS), (f,), generator=g)
    kinds[torch.randperm(f, generator=g)[: len(COLUMN_KINDS)]] = torch.arange(len(COLUMN_KINDS))
    sign = torch.where(torch.rand(m, generator=g) < 0.5, -1.0, 1.0).double()
    if like == "S":
        sign = sign.abs()
    for j, kind in enumerate(COLUMN_KINDS):
        cols = (kinds == j).nonzero().flatten()
        if kind == "exact":
            x[:, cols] = _exact(x[:, cols], g)
        elif kind == "dense":  # every token nonzero: each group drops 2
            x[:, cols] = sign[:, None] * (torch.rand(m, len(cols), generator=g, dtype=torch.float64) + 0.25)
        elif kind == "zero":  # with -0.0 where the sign is negative
            x[:, cols] = sign[:, None] * 0.0
        elif kind == "ties":  # |x| in {0, 0.5, 1, 1.5}
            x[:, cols] = sign[:, None] * torch.randint(0, 4, (m, len(cols)), generator=g).double() * 0.5
        elif kind == "equal":  # one magnitude in the whole column: the two lower tokens win
            x[:, cols] = sign[:, None] * 1.25
    return x.to(dtype)


operands = st.fixed_dictionaries(dict(
    like=st.sampled_from(["S", "dy"]), pattern=st.sampled_from(["mixed", "exact"]), dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1)))


# ---------------------------------------------------------------------------------------------
# The FFN middle on small integers: h, Uup, g, Vdown in {-1, 0, 1} with at most 16 nonzeros in a
# row of h and of g, so |y|, |dS| <= 16, relu(y)² <= 256 and |dy| <= 512 are exact in bf16 and
# fp16 and every sum is exact in float32: the kernels' S, dy, dh and weight gradients must be
# the float64 values rounded once to the dtype.


def _ternary(rows: int, cols: int, g: torch.Generator, at_most: int | None = None) -> torch.Tensor:
    t = torch.randint(-1, 2, (rows, cols), generator=g).double()
    if at_most is not None and cols > at_most:
        t = t * (torch.rand(rows, cols, generator=g).argsort(1).argsort(1) < at_most)
    return t


def integer_ffn(m: int, f: int, r: int, seed: int, exact_groups: bool) -> dict[str, torch.Tensor]:
    """float64 h (m x r), Uup (f x r), Vdown (r x f) and g (m x r); with ``exact_groups`` tokens 2
    and 3 of every group of 4 are zero rows of h, so S and dy hold at most 2 nonzeros per group."""
    gen = torch.Generator().manual_seed(seed)
    h = _ternary(m, r, gen, at_most=16)
    if exact_groups:
        h[(torch.arange(m) % 4) >= 2] = 0
    return dict(h=h, wu=_ternary(f, r, gen), wd=_ternary(r, f, gen), g=_ternary(m, r, gen, at_most=16))


def ffn_float64(h, wu, wd, g, fraction: float) -> dict[str, torch.Tensor]:
    """Forward and masked / masked-tokens24 backward of the FFN middle in float64."""
    h, wu, wd, g = (t.double() for t in (h, wu, wd, g))
    y = h @ wu.t()
    v = torch.relu(y) ** 2
    keep = top2_of_4(v)
    s = v * keep
    dy = (g @ wd) * 2 * torch.relu(y) * keep
    return dict(out=s @ wd.t(), s=s, dy=dy, dh=dy @ wu, dwu_masked=dy.t() @ h, dwd_masked=g.t() @ s,
                dwu=split_weight_grad(dy, h, fraction), dwd=split_weight_grad(s, g, fraction).t())


def assert_rounded_once(got: dict, want: dict, mode: str, what) -> None:
    """A run of the integer FFN middle (:func:`reference_path`, :func:`fused_path`) gives the
    float64 values of ``mode`` rounded once to its dtype."""
    for name in ("out", "dh", "dwu", "dwd"):
        key = name if mode == "masked-tokens24" or name in ("out", "dh") else name + "_masked"
        ref = want[key].to(device=got[name].device, dtype=got[name].dtype)
        assert torch.equal(got[name], ref), (what, mode, name, (got[name].double() - ref.double()).abs().max().item())


def reference_path(h, wu, wd, g, mode: str, fraction: float) -> dict[str, torch.Tensor]:
    """Forward and gradients through the reference ops, composed as the MLP graph composes them
    (passes/model/rewrite_mlp.build_graph)."""
    h, wu, wd = (t.detach().clone().requires_grad_() for t in (h, wu, wd))
    y = torch.ops.elas.tokens24_up_linear(h, wu, None, mode, fraction)
    s = torch.ops.elas.sparsify24(torch.relu(y) ** 2, mode)
    out = torch.ops.elas.sparse24_linear(s, wd, mode, "reference", fraction)
    dh, dwu, dwd = torch.autograd.grad(out, (h, wu, wd), g)
    return dict(out=out.detach(), dh=dh, dwu=dwu, dwd=dwd)


def fused_path(h, wu, wd, g, mode: str, fraction: float, backend: str) -> dict[str, torch.Tensor]:
    """The same through the fused op ``elas::lowrank_relu2_sparse24_linear`` on ``backend``."""
    from elas_compile.fused_ffn import lowrank_relu2_sparse24

    h, wu, wd = (t.detach().clone().requires_grad_() for t in (h, wu, wd))
    out = lowrank_relu2_sparse24(h, wu, wd, mode, backend, fraction)
    dh, dwu, dwd = torch.autograd.grad(out, (h, wu, wd), g)
    return dict(out=out.detach(), dh=dh, dwu=dwu, dwd=dwd)


def check_paths_rounded_once(p: dict, dtype, fraction: float, exact_groups: bool, backends: list[str],
                             device: str = "cpu") -> None:
    """The integer FFN ``p`` (:func:`integer_ffn`) through the reference ops and the fused op on each
    of ``backends``, in ``masked`` and ``masked-tokens24``: every run gives the float64 values
    rounded once; where every group of 4 tokens is exact, both modes' weight gradients are equal."""
    want = ffn_float64(**p, fraction=fraction)
    h, wu, wd, g = (p[k].to(dtype=dtype, device=device) for k in ("h", "wu", "wd", "g"))
    runs = {}
    for mode in ("masked", "masked-tokens24"):
        runs[mode, "reference"] = reference_path(h, wu, wd, g, mode, fraction)
        runs.update({(mode, b): fused_path(h, wu, wd, g, mode, fraction, b) for b in backends})
    for (mode, path), got in runs.items():
        assert_rounded_once(got, want, mode, path)
    if exact_groups:
        for path in ["reference"] + backends:
            for name in ("dwu", "dwd"):
                assert torch.equal(runs["masked-tokens24", path][name], runs["masked", path][name]), (path, name)


# ---------------------------------------------------------------------------------------------
# The properties, given what the kernels wrote (CPU or CUDA tensors).


def check_tokens24_compress(a: torch.Tensor, packed: torch.Tensor, dropped: torch.Tensor) -> None:
    """``packed``, ``dropped``: what ``tokens24_compress`` wrote for ``a`` (m x F) padded with zero
    tokens to a multiple of 64. The compressed aᵀ holds the float64 selection bit for bit (-0.0
    included), its metadata the kept tokens (all-zero groups: tokens 0 and 1), and ``dropped``
    the counts."""
    m, f = a.shape
    a_pad = pad_rows(a, 64)
    mp = a_pad.shape[0]
    at = decompress24_reference(packed, f, mp)
    assert torch.equal(bits(at[:, :m]), bits(tokens24_select(a.double()).t().to(a.dtype)))
    assert not at[:, m:].any()
    _, first, second = unpack24_reference(packed, f, mp)
    want_first, want_second = kept_positions(tokens24_keep(a_pad.double()).t())
    assert torch.equal(first, want_first) and torch.equal(second, want_second)
    assert dropped.tolist() == tokens24_dropped(a.double())


Y_KINDS = ("normal", "ties", "sparse", "scales")


def sparse_dx_case(m: int, f: int, dtype, kind: str, seed: int, rank: int = 32):
    """y and dS (m x F, zero rows up to a multiple of 64 tokens, as the fused op pads) and Uup."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(m, f, generator=g)
    if kind == "ties":  # relu² in {0, 0.25, 1, 2.25}: ties in most groups
        y = torch.randint(-3, 4, (m, f), generator=g) * 0.5
    elif kind == "sparse":  # groups with fewer than 2 positive entries: kept zeros
        y = y * (torch.rand(m, f, generator=g) < 0.3) - 0.5 * (torch.rand(m, f, generator=g) < 0.3)
    elif kind == "scales" and dtype == torch.bfloat16:  # rows from 2^-20 to 2^20
        y = y * 2.0 ** torch.randint(-20, 21, (m, 1), generator=g)
    ds = torch.randn(m, f, generator=g)
    uup = torch.randn(f, rank, generator=g) / f**0.5
    return pad_rows(y.to(dtype), 64), pad_rows(ds.to(dtype), 64), uup.to(dtype)


def check_sparse_dx(y, ds, packed, dy, s, dy_packed) -> torch.Tensor:
    """The forward's S and the backward pass's compressed dy keep the positions of the float64 top
    two of relu(y)² rounded to the dtype (what the forward ranks); dy there is 2 dS sqrt(v) within
    one ulp (float32, one rounding), the dense dy is the decompressed one, the metadata words are
    S's. Returns the float64 dy."""
    rows, f = y.shape
    v = (torch.relu(y.double()) ** 2).to(y.dtype).double()
    keep = top2_of_4(v)
    assert torch.equal(s, (v * keep).to(y.dtype))
    _, first, second = unpack24_reference(dy_packed, rows, f)
    want_first, want_second = kept_positions(keep)
    assert torch.equal(first, want_first) and torch.equal(second, want_second)
    nv = values_numel(rows, f)
    assert torch.equal(bits(dy_packed).flatten()[nv:], bits(packed).flatten()[nv:])
    dy64 = 2 * ds.double() * v.sqrt() * keep
    got = decompress24_reference(dy_packed, rows, f)
    assert_within(got, dy64, 2 * UNIT[y.dtype] * dy64.abs() + SUBNORMAL_STEP[y.dtype], "compressed dy")
    assert torch.equal(got, dy)
    return dy64


def check_sparse_dx_pass(y: torch.Tensor, ds: torch.Tensor, uup: torch.Tensor) -> None:
    """triton-sparse-dx on one case (:func:`sparse_dx_case`, any device): the Triton forward, the
    backward pass that also writes dy compressed, and dh = dy·Uup on it (``elas::cslt_mm``)."""
    from elas_compile.kernels.triton import sparse24_backward as bwd
    from elas_compile.kernels.triton.relu2_sparsify import relu2_sparsify24_compress

    rows, f = y.shape
    packed = relu2_sparsify24_compress(y)
    dy, s, dy_packed = bwd.relu2_sparsify24_backward(ds, packed, None, "masked", rows, f, write_s=True,
                                                     write_dy_packed=True)
    dy64 = check_sparse_dx(y, ds, packed, dy, s, dy_packed)
    check_dh(torch.ops.elas.cslt_mm(dy_packed, uup, rows, f), dy64, uup)


def check_dh(dh: torch.Tensor, dy64: torch.Tensor, uup: torch.Tensor) -> None:
    """dh = dy·Uup from the compressed dy: the float64 product within the rounding of dy (one ulp),
    float32 accumulation and one rounding."""
    u = UNIT[uup.dtype]
    u64 = uup.double()
    bound = 4 * u * (dy64.abs() @ u64.abs()) + SUBNORMAL_STEP[uup.dtype] * (u64.abs().sum(0) + 1)
    assert_within(dh, dy64 @ u64, bound, "dh")
