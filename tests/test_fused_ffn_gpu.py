"""The fast ELAS FFN on a CUDA GPU: Triton + cuSPARSELt against float64 references, compiled
model paths (default, reduce-overhead, max-autotune). Skipped without CUDA."""
import pytest
import torch

import elas_compile
from torch._inductor import config as inductor_config
from elas_compile.fused_ffn import lowrank_relu2_sparse24

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("dv_kernel", ["0", "1"])  # ELAS_DV_KERNEL=1: dVdown from the compressed S
@pytest.mark.parametrize("mode", ["masked", "ste"])
@pytest.mark.parametrize("m,r,f,r2", [(4096, 256, 1024, 256), (1000, 128, 512, 64)])
def test_fused_op_matches_float64(mode, m, r, f, r2, dv_kernel, monkeypatch):
    monkeypatch.setenv("ELAS_DV_KERNEL", dv_kernel)
    g = torch.Generator(device="cuda").manual_seed(m)
    h = torch.randn(m, r, device="cuda", generator=g).bfloat16().requires_grad_()
    wu = (torch.randn(f, r, device="cuda", generator=g) / r**0.5).bfloat16().requires_grad_()
    wd = (torch.randn(r2, f, device="cuda", generator=g) / f**0.5).bfloat16().requires_grad_()
    out = lowrank_relu2_sparse24(h, wu, wd, mode)
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


@pytest.mark.parametrize("compile_mode", ["default", "reduce-overhead", "max-autotune"])
def test_compiled_llama_uses_the_sparse_path(compile_mode):
    from torch._dynamo.utils import counters
    from transformers import LlamaConfig, LlamaForCausalLM

    counters.clear()
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=512, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).cuda().bfloat16()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=64, dense_warmup_steps=0))
    torch._dynamo.reset()
    compiled = torch.compile(model, mode=None if compile_mode == "default" else compile_mode, fullgraph=True)
    ids = torch.randint(3, 512, (4, 128), device="cuda")
    # a cache hit from the other modes' compilation would skip the pre-grad pass (and its counter)
    with inductor_config.patch(force_disable_caches=True):
        for _ in range(3):
            model.zero_grad(set_to_none=True)  # CUDA graphs overwrite last step's grads: no accumulation
            torch.compiler.cudagraph_mark_step_begin()
            loss = compiled(input_ids=ids, labels=ids).loss
            loss.backward()
        loss = loss.detach().clone()
    ref = model(input_ids=ids, labels=ids).loss
    assert counters["elas"]["lowrank_relu2_sparse24_linear_fused"] == 2, dict(counters["elas"])
    torch.testing.assert_close(loss.float(), ref.float(), atol=3e-2, rtol=1e-2)
