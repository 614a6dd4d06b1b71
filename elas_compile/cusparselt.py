"""``elas::cslt_mm``: the 2:4 compressed operand times a dense matrix, on cuSPARSELt.

The plan (algorithm id, and whether B is passed as given or copied contiguous first) is chosen
once per (shape, dtype, B layout, device) by timing every id cuSPARSELt accepts, on the GPU alone:
a sleep kernel holds the stream while the calls are enqueued, so host time stays out of the
measurement. The winner's product is checked against the decompressed operand (the compressed
layout may depend on the algorithm, pytorch#136553); an id that disagrees is skipped with a
warning. (torch's ``_cslt_sparse_mm_search`` returns an id without checking its product;
``python -m tools.cslt_algorithms`` times every configuration.) The choice runs on the first real
call, which under ``mode="reduce-overhead"`` is CUDA graphs' warm-up run; a first call inside a
capture takes id 0 (warned once). The products run through the plan cache of
``kernels/cusparselt`` (plans built once per shape), else ``torch._cslt_sparse_mm``. Other devices
decompress and multiply (reference).
"""
from __future__ import annotations

import ctypes
import os
from typing import Callable, Iterable, NamedTuple

import torch

from elas_compile.diagnostics import warn_once
from elas_compile.kernels.cusparselt import library as plan_cache
from elas_compile.kernels.cslt_layout import check_packed
from elas_compile.kernels.triton import ops as triton_ops  # noqa: F401  (registers the compress/decompress ops)


class Plan(NamedTuple):
    alg: int
    contiguous_b: bool  # copy B row-major before the call (some ids are faster than on W.t())


_PLAN_CACHE: dict[tuple, Plan] = {}


def _key(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> tuple:
    return (rows, cols, b.shape[1], b.dtype, b.stride(), packed.device.index)


def pick_fastest(candidates: Iterable[Plan], time_ms: Callable[[Plan], float],
                 agrees: Callable[[Plan], bool]) -> Plan:
    """The fastest candidate whose product ``agrees`` with the reference; those that disagree are
    skipped with a warning."""
    times = {plan: time_ms(plan) for plan in candidates}
    for plan in sorted(times, key=times.get):
        if agrees(plan):
            return plan
        warn_once(f"elas.cslt_mm: cuSPARSELt algorithm {plan.alg} (contiguous B: {plan.contiguous_b}) gives a "
                   "wrong product for this compressed layout; skipped")
    raise RuntimeError("elas.cslt_mm: no cuSPARSELt algorithm reproduced the reference product")


_DTYPES = {torch.bfloat16: 0, torch.float16: 1}
_WORKSPACES: dict[tuple, torch.Tensor] = {}  # per plan of the C++ plan cache, alive as long as it


def _call(packed: torch.Tensor, b: torch.Tensor, plan: Plan) -> torch.Tensor:
    """``A @ b`` with ``plan``: through the C++ plan cache (kernels/cusparselt), whose host cost is a
    launch, else through ``torch._cslt_sparse_mm``, which builds its plan on every call."""
    b = b.contiguous() if plan.contiguous_b or not (b.is_contiguous() or b.t().is_contiguous()) else b
    lib = plan_cache.library()
    if lib is None:
        warn_once(f"cuSPARSELt plans are rebuilt on every call ({plan_cache.unavailable_reason()}): each sparse "
                  "GEMM costs host time; compile with mode='reduce-overhead' (CUDA graphs) to hide it")
        return torch._cslt_sparse_mm(packed, b, alg_id=plan.alg)
    (k, n), m, device = b.shape, packed.shape[0], packed.device.index
    key = (device, m, k, n, _DTYPES[b.dtype], int(b.is_contiguous()), plan.alg)
    workspace = _WORKSPACES.get(key)
    if workspace is None:
        size = ctypes.c_size_t()
        plan_cache.check(lib.elas_cslt_plan(*key, ctypes.byref(size)), f"plan for {m}x{k}x{n}")
        workspace = _WORKSPACES[key] = torch.empty(max(size.value, 1), dtype=torch.uint8, device=packed.device)
    out = torch.empty(m, n, dtype=b.dtype, device=packed.device)
    stream = torch.cuda.current_stream(packed.device).cuda_stream
    plan_cache.check(lib.elas_cslt_mm(device, packed.data_ptr(), b.data_ptr(), out.data_ptr(), m, k, n, key[4],
                                      key[5], plan.alg, workspace.data_ptr(), stream), f"{m}x{k}x{n}")
    return out


def _gpu_ms(fn: Callable[[], object], reps: int = 5) -> float:
    """Median GPU time of ``fn``, its host cost hidden behind a sleep kernel."""
    torch.cuda._sleep(int(2e7))  # ~10 ms: longer than enqueuing ``reps`` calls
    events = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return sorted(a.elapsed_time(b) for a, b in events)[reps // 2]


def _choose(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> Plan:
    layouts = [False] if b.is_contiguous() else [False, True]
    candidates = [Plan(alg, cont) for cont in layouts for alg in valid_algorithms(packed, b.contiguous() if cont else b)]
    ref = torch.ops.elas.sparse24_decompress(packed, rows, cols).float() @ b.float()

    def agrees(plan: Plan) -> bool:
        out = _call(packed, b, plan).float()
        return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item() < 1e-2

    return pick_fastest(candidates, lambda plan: _gpu_ms(lambda: _call(packed, b, plan)), agrees)


def plan_for(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> Plan:
    """The cached plan for this product, chosen on first use. ``ELAS_CSLT_ALG=<id>`` forces an
    algorithm with B as given (benchmarks, bisecting)."""
    forced = os.environ.get("ELAS_CSLT_ALG")
    if forced is not None:
        return Plan(int(forced), False)
    key = _key(packed, b, rows, cols)
    if key not in _PLAN_CACHE:
        if torch.cuda.is_current_stream_capturing():
            warn_once("elas.cslt_mm: first call of a shape inside a CUDA graph capture: cuSPARSELt algorithm 0 "
                       "(run one step outside capture first to choose the fastest)")
            return Plan(0, False)
        _PLAN_CACHE[key] = _choose(packed, b, rows, cols)
    return _PLAN_CACHE[key]


def algorithm_for(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> int:
    """The cached cuSPARSELt algorithm id for this product."""
    return plan_for(packed, b, rows, cols).alg


def valid_algorithms(packed: torch.Tensor, b: torch.Tensor, limit: int = 64) -> list[int]:
    """The cuSPARSELt algorithm ids ``torch._cslt_sparse_mm(packed, b, alg_id=...)`` accepts here
    (ids are consecutive from 0; the set depends on dtype and on b's layout)."""
    ids = []
    for alg in range(limit):
        try:
            torch._cslt_sparse_mm(packed, b, alg_id=alg)
            torch.cuda.synchronize()
        except RuntimeError:
            break
        ids.append(alg)
    return ids


@torch.library.custom_op("elas::cslt_mm", mutates_args=())
def cslt_mm(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A @ b where A (rows x cols, 2:4 sparse) is given compressed (``packed``); b is cols x N."""
    check_packed(packed, rows, cols)
    if packed.is_cuda:
        return _call(packed, b, plan_for(packed, b, rows, cols))
    dense = torch.ops.elas.sparse24_decompress(packed, rows, cols)
    return dense @ b


@cslt_mm.register_fake
def _cslt_mm_fake(packed, b, rows, cols):
    if b.shape[0] != cols:
        raise ValueError(f"elas.cslt_mm: A has {cols} columns but b has {b.shape[0]} rows")
    return b.new_empty((rows, b.shape[1]))
