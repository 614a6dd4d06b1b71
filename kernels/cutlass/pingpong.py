"""The CUTLASS kernels' GEMM kernel: CUTLASS's ping-pong kernel with overlapping epilogues, derived at
build time from the CUTLASS headers (no CUTLASS source is copied into this repository).

In CUTLASS's ping-pong kernel (``include/cutlass/gemm/kernel/sm90_gemm_tma_warpspecialized_pingpong.hpp``)
the two consumer warpgroups take turns, through one ordered barrier, for their MMAs and for their
epilogues: the stock epilogue shares its shared memory, store pipeline and a named barrier between
them. The epilogues of the up and grad kernels (``kernels/cutlass/up_relu2_sparse24.cu``,
``grad_relu2_sparse24.cu``) keep everything in registers and load and store global memory
directly, so here the epilogue's turn is passed on as soon as it is taken and two epilogues may
run at once (at 16384 x 4096 x 256, K = 256, where the epilogue is longer than the main loop: the
up kernel 0.092 ms against 0.115 with the turns). The MMAs still alternate.
Before a tile's MMA each consumer warpgroup calls ``collective_epilogue.prefetch(problem shape, tile
shape, tile coordinate, thread index)``, so an epilogue that reads global memory (the grad kernel's
compressed S) has its loads in flight during the MMAs; the epilogue keeps what they return.

:func:`derive` makes four edits to the header's text and raises ``RuntimeError`` naming the text it
did not find. The edits are checked against the CUTLASS versions in :data:`CHECKED_CUTLASS` (4.2.0 is
what PyPI's ``nvidia-cutlass`` ships); ``toolchain`` refuses headers of any other version, since a
kernel whose text still matched but whose synchronisation changed could hang or race. The result defines
``cutlass::gemm::kernel::PingpongConcurrentEpilogue<ProblemShape, CollectiveMainloop,
CollectiveEpilogue, TileScheduler>`` beside the stock kernel; use it only with an epilogue that
touches no shared memory and no named barrier.
"""
from __future__ import annotations

from pathlib import Path

# 4.7.0: built and GPU-tested; 4.2.0 (PyPI's nvidia-cutlass 4.2.0.0): the four edits match, the library builds
CHECKED_CUTLASS = ("4.2.0", "4.7.0")
HEADER = Path("include/cutlass/gemm/kernel/sm90_gemm_tma_warpspecialized_pingpong.hpp")
OUT_NAME = "pingpong_concurrent_epilogue.hpp"

_SPECIALIZATION = """class GemmUniversal<
  ProblemShape_,
  CollectiveMainloop_,
  CollectiveEpilogue_,
  TileScheduler_,
  cute::enable_if_t<cute::is_base_of_v<KernelTmaWarpSpecializedPingpong, typename CollectiveMainloop_::DispatchPolicy::Schedule>>>
{"""
_MMA_WAIT = """        // Order two Math WG's MMA one after the other, helps hide Epilogue
        math_wg_order_barrier.wait();
"""
_EPILOGUE_WAIT = """        // Order two Math WG's Epilogue one after the other
        math_wg_order_barrier.wait();
"""
_EPILOGUE_ARRIVE = """        // Cue for next Math WG's Epilogue to start
        math_wg_order_barrier.arrive();
"""
_EDITS = (
    ("the ping-pong GemmUniversal specialization", _SPECIALIZATION, "class PingpongConcurrentEpilogue\n{"),
    ("the epilogue's turn (wait)", _EPILOGUE_WAIT,
     "        // ELAS: take the epilogue's turn and pass it on at once (epilogues may overlap)\n"
     "        math_wg_order_barrier.wait();\n        math_wg_order_barrier.arrive();\n"),
    ("the epilogue's turn (arrive)", _EPILOGUE_ARRIVE, ""),
    ("the MMA's turn", _MMA_WAIT,
     "        // ELAS: the epilogue's loads for this tile start before the MMA's turn is awaited\n"
     "        collective_epilogue.prefetch(problem_shape_MNKL, blk_shape, blk_coord, warp_group_thread_idx);\n"
     + _MMA_WAIT),
)


def derive(cutlass: Path) -> str:
    """The text of the derived header, from the CUTLASS source tree at ``cutlass``."""
    path = Path(cutlass) / HEADER
    if not path.is_file():
        raise RuntimeError(f"CUTLASS header not found: {path}")
    text = path.read_text()
    for what, old, new in _EDITS:
        if text.count(old) != 1:
            raise RuntimeError(f"{path}: {what} not found as expected (this build derives its ping-pong kernel "
                               f"from the text of CUTLASS {' or '.join(CHECKED_CUTLASS)}; use one of those)")
        text = text.replace(old, new)
    return f"// Derived by elas_compile.kernels.cutlass.pingpong from {HEADER} (BSD-3-Clause, NVIDIA).\n" + text


def write(cutlass: Path, out_dir: Path) -> Path:
    """Write the derived header into ``out_dir`` (to be put on the include path); returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUT_NAME
    target.write_text(derive(cutlass))
    return target
