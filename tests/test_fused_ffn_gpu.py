"""The fast ELAS FFN on a CUDA GPU: each fused backend against float64 references, and compiled
LLaMA steps in the three compile modes that run the backend asked for (proved from the generated
code). Skipped without CUDA."""
import pytest
import torch
from torch._inductor import config as inductor_config
from torch._inductor.utils import run_and_get_code
from torch.testing import FileCheck

import elas_compile
from elas_compile.fused_ffn import lowrank_relu2_sparse24

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _backends():
    from elas_compile.kernels.cutlass import ops as cutlass

    return ["triton"] + (["cutlass"] if cutlass.available("cuda") else [])


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("mode", ["masked", "ste"])
@pytest.mark.parametrize("m,r,f,r2", [(4096, 256, 1024, 256), (1000, 128, 512, 64)])
def test_fused_op_matches_float64(backend, mode, m, r, f, r2):
    if backend == "cutlass" and mode == "ste":
        pytest.skip("the CUTLASS kernels compute the masked backward only")
    g = torch.Generator(device="cuda").manual_seed(m)
    h = torch.randn(m, r, device="cuda", generator=g).bfloat16().requires_grad_()
    wu = (torch.randn(f, r, device="cuda", generator=g) / r**0.5).bfloat16().requires_grad_()
    wd = (torch.randn(r2, f, device="cuda", generator=g) / f**0.5).bfloat16().requires_grad_()
    out = lowrank_relu2_sparse24(h, wu, wd, mode, backend)
    go = torch.randn_like(out)
    got = torch.autograd.grad(out, (h, wu, wd), go)
    y = (h.detach() @ wu.detach().t()).double().requires_grad_()
    wd64 = wd.detach().double().requires_grad_()
    ref = torch.ops.elas.relu2_sparsify24(y, mode) @ wd64.t()
    gy, gwd = torch.autograd.grad(ref, (y, wd64), go.double())
    assert _rel(out, ref) < 1e-2
    assert _rel(got[2], gwd) < 1e-2
    assert _rel(got[0], gy @ wu.detach().double()) < 2e-2
    assert _rel(got[1], gy.t() @ h.detach().double()) < 2e-2


@pytest.mark.parametrize("kernels", _backends())
@pytest.mark.parametrize("compile_mode", ["default", "reduce-overhead", "max-autotune"])
def test_compiled_llama_runs_the_backend_asked_for(compile_mode, kernels):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=512, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).cuda().bfloat16()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=64, dense_warmup_steps=0, kernels=kernels))
    torch._dynamo.reset()
    compiled = torch.compile(model, mode=None if compile_mode == "default" else compile_mode, fullgraph=True)
    ids = torch.randint(3, 512, (4, 128), device="cuda")

    def steps():
        for _ in range(3):
            model.zero_grad(set_to_none=True)  # CUDA graphs overwrite last step's grads: no accumulation
            torch.compiler.cudagraph_mark_step_begin()
            loss = compiled(input_ids=ids, labels=ids).loss
            loss.backward()
        return loss.detach().clone()

    # max-autotune's GEMM search (Triton templates compiled and benchmarked per shape) costs minutes
    # of GPU time and says nothing about the ELAS op: the mode's pipeline runs with ATen GEMMs only
    with inductor_config.patch(force_disable_caches=True, max_autotune_gemm_backends="ATEN"):
        loss, code = run_and_get_code(steps)
    code = "\n".join(code)
    FileCheck().check("torch.ops.elas.cslt_mm.default").run(code)
    up = FileCheck().check if kernels == "cutlass" else FileCheck().check_not
    up("torch.ops.elas.cutlass_up_relu2_sparse24.default").run(code)
    ref = model(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(loss.float(), ref.float(), atol=3e-2, rtol=1e-2)
