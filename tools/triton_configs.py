"""Tile configurations of the Triton 2:4 kernels, swept on a GPU: every (BLOCK_M, BLOCK_F,
num_warps) of ``SWEEP_CONFIGS`` for the forward pass (relu² + 2:4 + compress,
``kernels/triton/relu2_sparsify.py``), the masked and ste backward passes and the decompression
(``kernels/triton/sparse24_backward.py``), each against its memory floor (bytes read and written
over a device copy's bandwidth). The defaults in those files (``FWD_CONFIG``, ``CONFIGS``) are the
fastest of such a sweep; this is how to redo it on another GPU.

    python -m tools.triton_configs [--shape 16384x8192]
"""
from __future__ import annotations

import argparse

import torch

from benchmarks.timing import bench_ms, copy_bandwidth
from elas_compile.kernels.triton import relu2_sparsify as fwd
from elas_compile.kernels.triton import sparse24_backward as bwd


def kernels(m: int, f: int):
    """name -> (fn(config), bytes it must move, the sweep, the default config)."""
    y = torch.randn(m, f, device="cuda", dtype=torch.bfloat16)
    g = torch.randn_like(y)
    p = fwd.relu2_sparsify24_compress(y)
    mf = m * f
    return {
        "forward": (lambda c: fwd.relu2_sparsify24_compress(y, config=c), (2 + 9 / 8) * mf, fwd.SWEEP_CONFIGS,
                    fwd.FWD_CONFIG),
        "backward masked": (lambda c: bwd.relu2_sparsify24_backward(g, p, None, "masked", m, f, config=c, write_s=True),
                            (2 + 9 / 8 + 4) * mf, bwd.SWEEP_CONFIGS, bwd.CONFIGS["backward"]),
        "backward ste": (lambda c: bwd.relu2_sparsify24_backward(g, p, y, "ste", m, f, config=c, write_s=True),
                         (2 + 2 + 9 / 8 + 4) * mf, bwd.SWEEP_CONFIGS, bwd.CONFIGS["backward"]),
        "decompress": (lambda c: bwd.sparse24_decompress(p, m, f, config=c), (9 / 8 + 2) * mf, bwd.SWEEP_CONFIGS,
                       bwd.CONFIGS["decompress"]),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="16384x8192", help="rows x cols (tokens x FFN width)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("triton_configs: needs a CUDA GPU")
    m, f = (int(v) for v in args.shape.split("x"))
    bandwidth = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}: device copy {bandwidth / 1e12:.2f} TB/s")
    for name, (fn, nbytes, sweep, default) in kernels(m, f).items():
        floor = nbytes / bandwidth * 1e3
        times = {cfg: bench_ms(lambda c=cfg: fn(c)) for cfg in sweep}
        for cfg, ms in sorted(times.items(), key=lambda kv: kv[1]):
            mark = "  <- default" if tuple(cfg) == tuple(default) else ""
            print(f"  {name:<16} {str(cfg):<15} {ms * 1e3:8.1f} us  x{ms / floor:.2f} floor{mark}")


if __name__ == "__main__":
    main()
