"""How the suites time things: medians, on the GPU with CUDA events or from CUDA graphs.

- :func:`bench_ms`: ``triton.testing.do_bench`` medians (CUDA events, L2 flushed between calls),
  repeated and the median taken; host cost between calls counts, as in a real program.
- :func:`graph_ms`: ``calls`` calls captured in one CUDA graph and replayed; the median of the
  replays' CUDA-event times, per call. No host cost: what the GPU alone takes.
- :func:`host_ms`: wall-clock medians, for CPU smoke runs (whose numbers mean nothing for GPUs).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

GRAPH_CALLS = 20
GRAPH_REPLAYS = 7


def bench_ms(fn: Callable[[], object], repeats: int = 3, warmup: int = 25, rep: int = 100) -> float:
    """Median over ``repeats`` runs of do_bench's median ms per call of ``fn`` (CUDA)."""
    from triton.testing import do_bench

    return statistics.median(do_bench(fn, warmup=warmup, rep=rep, return_mode="median") for _ in range(repeats))


def capture(fn: Callable[[], object], calls: int = GRAPH_CALLS) -> torch.cuda.CUDAGraph:
    """A CUDA graph of ``calls`` calls of ``fn`` (after two warm-up calls on a side stream)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return graph


def graph_ms(fn: Callable[[], object], calls: int = GRAPH_CALLS, replays: int = GRAPH_REPLAYS) -> float:
    """Median ms per call of ``fn`` replayed from a CUDA graph of ``calls`` calls."""
    graph = capture(fn, calls)
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / calls)
    del graph
    return statistics.median(times)


def host_ms(fn: Callable[[], object], repeats: int = 3, calls: int = 3) -> float:
    """Median wall-clock ms per call (CPU)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) * 1e3 / calls)
    return statistics.median(times)


def copy_bandwidth(nbytes: int = 2**30) -> float:
    """Bytes per second of a device-to-device copy of ``nbytes``, counting bytes read and written:
    the memory floor a kernel that streams its operands once cannot beat."""
    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    ms = graph_ms(lambda: dst.copy_(src), calls=5)
    del src, dst
    return 2 * nbytes / (ms * 1e-3)
