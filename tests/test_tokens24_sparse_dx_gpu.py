"""Issue 21 items 1 and 2 on a CUDA GPU: the token-wise 2:4 operand and the weight gradients of
``masked-tokens24`` on cuSPARSELt, the sparse dh of ``triton-sparse-dx``, each against float64
references, and compiled LLaMA steps that run them (proved from the generated code). Skipped
without CUDA."""
import pytest
import torch
from torch._inductor import config as inductor_config
from torch._inductor.utils import run_and_get_code

import elas_compile
from elas_compile.backends import SPARSE_DX
from elas_compile.fused_ffn import lowrank_relu2_sparse24
from elas_compile.kernels import reference
from elas_compile.kernels.cslt_layout import compress24_reference

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _backends():
    from elas_compile.kernels.cutlass import ops as cutlass

    return ["triton", SPARSE_DX] + (["cutlass"] if cutlass.available("cuda") else [])


def _relu2_like(m, f, seed=0):
    """tokens x features like S: relu² of a Gaussian, 2:4 along features."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    return reference.relu2_sparsify24(torch.randn(m, f, device="cuda", generator=g)).bfloat16()


@pytest.mark.parametrize("m,f", [(4096, 1024), (192, 320)])
def test_the_tokens24_pass_writes_the_reference_layout_and_cusparselt_multiplies_it(m, f):
    from elas_compile.kernels.triton import tokens24

    a = _relu2_like(m, f)
    a[:, 3] = torch.randn(m, device="cuda").bfloat16()  # a dense column
    packed, dropped = tokens24.tokens24_compress(a)
    assert torch.equal(packed.view(torch.int16), compress24_reference(a.t().contiguous()).view(torch.int16))
    assert torch.equal(dropped, reference.tokens24_dropped(a))
    b = torch.randn(m, 128, device="cuda").bfloat16()
    got = torch.ops.elas.cslt_mm(packed, b, f, m)
    assert _rel(got, reference.sparsify24_tokens(a).t().double() @ b.double()) < 1e-2


@pytest.mark.parametrize("fraction", [0.0, 0.05])
def test_the_weight_gradient_on_cusparselt_matches_float64(fraction):
    from elas_compile import tokens24

    a, b = _relu2_like(4096, 1024), torch.randn(4096, 256, device="cuda").bfloat16()
    got = tokens24.weight_grad(a, b, fraction)
    assert _rel(got, reference.tokens24_weight_grad(a.double(), b.double(), fraction)) < 1e-2


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("m", [4096, 1000])
def test_fused_masked_tokens24_matches_float64(backend, m):
    r, f, r2 = 256, 1024, 256
    g = torch.Generator(device="cuda").manual_seed(m)
    h = torch.randn(m, r, device="cuda", generator=g).bfloat16().requires_grad_()
    wu = (torch.randn(f, r, device="cuda", generator=g) / r**0.5).bfloat16().requires_grad_()
    wd = (torch.randn(r2, f, device="cuda", generator=g) / f**0.5).bfloat16().requires_grad_()
    out = lowrank_relu2_sparse24(h, wu, wd, "masked-tokens24", backend, 0.05)
    go = torch.randn_like(out)
    got = torch.autograd.grad(out, (h, wu, wd), go)
    h64, wu64, wd64 = (t.detach().double() for t in (h, wu, wd))
    y = h64 @ wu64.t()
    s = reference.relu2_sparsify24(y)
    gd = go.double()
    dy = (gd @ wd64) * 2 * torch.relu(y) * (s != 0)
    assert _rel(out, s @ wd64.t()) < 1e-2
    assert _rel(got[0], dy @ wu64) < 2e-2
    assert _rel(got[1], reference.tokens24_weight_grad(dy, h64, 0.05)) < 2e-2
    assert _rel(got[2], reference.tokens24_weight_grad(s, gd, 0.05).t()) < 2e-2


@pytest.mark.parametrize("m", [4096, 1000])
def test_sparse_dx_gives_the_triton_gradients(m):
    g = torch.Generator(device="cuda").manual_seed(m)
    h = torch.randn(m, 256, device="cuda", generator=g).bfloat16().requires_grad_()
    wu = (torch.randn(1024, 256, device="cuda", generator=g) / 16).bfloat16().requires_grad_()
    wd = (torch.randn(256, 1024, device="cuda", generator=g) / 32).bfloat16().requires_grad_()
    go = torch.randn(m, 256, device="cuda", generator=g).bfloat16()
    runs = {}
    for backend in ("triton", SPARSE_DX):
        out = lowrank_relu2_sparse24(h, wu, wd, "masked", backend)
        runs[backend] = torch.autograd.grad(out, (h, wu, wd), go)
    assert torch.equal(runs["triton"][1], runs[SPARSE_DX][1])  # dUup and dVdown: the same dense dy and S
    assert torch.equal(runs["triton"][2], runs[SPARSE_DX][2])
    assert _rel(runs[SPARSE_DX][0], runs["triton"][0]) < 1e-2  # dh: cuSPARSELt vs cuBLAS accumulation


@pytest.mark.parametrize("kernels,backward,sparse_gemms", [
    (SPARSE_DX, "masked", 2),  # forward down GEMM, dh
    ("triton", "masked-tokens24", 3),  # forward, dVdown, dUup
    (SPARSE_DX, "masked-tokens24", 4),
])
def test_compiled_llama_runs_the_sparse_backward(kernels, backward, sparse_gemms):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=512, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).cuda().bfloat16()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=64, dense_warmup_steps=0, kernels=kernels,
                                                      backward=backward))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    ids = torch.randint(3, 512, (4, 512), device="cuda")

    def step():
        loss = compiled(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.detach()

    with inductor_config.patch(force_disable_caches=True):
        loss, code = run_and_get_code(step)
    assert torch.isfinite(loss)
    assert "\n".join(code).count("torch.ops.elas.cslt_mm.default(") == sparse_gemms
