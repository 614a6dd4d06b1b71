"""dV = g^T S from the compressed S (kernels/triton_dv_gemm.py): under the Triton interpreter on
CPU tensors, and on a CUDA GPU with every swept configuration (skipped without one)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels import triton_dv_gemm as D  # noqa: E402

from sparse24_cases import DTYPES, rel_err  # noqa: E402


def _operands(t, f, r, dtype, device, seed):
    gen = torch.Generator(device=device).manual_seed(seed)
    packed = L.relu2_sparsify24_compress_reference(torch.randn(t, f, device=device, generator=gen).to(dtype))
    g = torch.randn(t, r, device=device, generator=gen).to(dtype)
    return g, packed, g.double().t() @ L.decompress24_reference(packed, t, f).double()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [None, (32, 64, 32, 4, 1, 1), (64, 32, 64, 4, 1, 4)])
def test_interpreter_matches_float64(dtype, config):
    t, f, r = 256, 128, 64
    g, packed, ref = _operands(t, f, r, dtype, "cpu", seed=5)
    out = D.dv_sparse24(g, packed, t, f, config=config)
    assert out.shape == (r, f) and out.dtype == dtype
    assert rel_err(out, ref) < 4e-3


def test_bad_operands_are_named():
    g, packed, _ = _operands(128, 64, 32, torch.bfloat16, "cpu", seed=1)
    with pytest.raises(ValueError, match="g must be"):
        D.dv_sparse24(g[:64], packed, 128, 64)
    with pytest.raises(ValueError, match="packed must be"):
        D.dv_sparse24(g, packed[:64], 128, 64)
    with pytest.raises(ValueError, match="split"):
        D.dv_sparse24(g, packed, 128, 64, config=(32, 64, 64, 4, 1, 4))  # 128 tokens, 4 x 64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_every_config(dtype):
    t, f, r = 4096, 1024, 256
    g, packed, ref = _operands(t, f, r, dtype, "cuda", seed=9)
    for cfg in [None] + D.SWEEP_CONFIGS:
        assert rel_err(D.dv_sparse24(g, packed, t, f, config=cfg), ref) < 4e-3, cfg
