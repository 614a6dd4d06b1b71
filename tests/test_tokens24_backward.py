"""Backward mode ``masked-tokens24`` through ``apply``: the masked forward and activation
gradients, approximate weight gradients of the FFN middle only, the same on every path (eager,
compiled reference ops, the fused op's CPU references), config errors, checkpoints, explain."""
import copy
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch._dynamo.utils import counters

import elas_compile
from elas_compile.errors import ConfigError, ELASError
from tiny_models import llama

D, WIDTH, R = 32, 128, 16
APPROXIMATE = {"0.mlp.up_proj.u", "0.mlp.down_proj.v"}  # Uup and Vdown


class SwiGLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(D, 96, bias=False), nn.Linear(D, 96, bias=False)
        self.down_proj = nn.Linear(96, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def _mlp(backward, dtype=torch.float64, **kw):
    torch.manual_seed(0)
    holder = nn.Sequential(nn.Sequential(SwiGLU()))
    holder[0].mlp = holder[0].pop(0)
    cfg = elas_compile.ELASConfig(rank=R, ffn_width_multiplier=WIDTH / 96, dense_warmup_steps=0, backward=backward, **kw)
    return elas_compile.apply(holder, cfg).to(dtype)


def _grads(model, x, compile_backend=None):
    run = torch.compile(model, backend=compile_backend, fullgraph=True) if compile_backend else model
    x = x.clone().requires_grad_(True)
    run(x).pow(2).sum().backward()
    out = {n: p.grad.clone() for n, p in model.named_parameters()}
    out["x"] = x.grad
    return out


def _x(tokens=64, dtype=torch.float64, exact=False):
    x = torch.randn(tokens, D, dtype=dtype, generator=torch.Generator().manual_seed(3))
    if exact:  # tokens 2 and 3 of every group of 4 are zero: h, S and dy hold at most 2 nonzeros per group
        x.view(-1, 4, D)[:, 2:] = 0
    return x


def test_where_every_group_is_exact_the_gradients_are_the_masked_ones():
    x = _x(exact=True)
    masked, t24 = _grads(_mlp("masked"), x), _grads(_mlp("masked-tokens24", wgrad_dense_fraction=0.0), x)
    for name in masked:
        torch.testing.assert_close(t24[name], masked[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tokens", [64, 62])
def test_otherwise_only_the_two_weight_gradients_differ(tokens):
    x = _x(tokens)
    masked, t24 = _grads(_mlp("masked"), x), _grads(_mlp("masked-tokens24"), x)
    for name in masked:
        if name in APPROXIMATE:
            assert not torch.allclose(t24[name], masked[name])
            rel = (t24[name] - masked[name]).norm() / masked[name].norm()
            assert rel < 0.5
        else:
            assert torch.equal(t24[name], masked[name]), name


def test_a_dense_fraction_of_one_gives_the_masked_gradients():
    x = _x()
    masked, t24 = _grads(_mlp("masked"), x), _grads(_mlp("masked-tokens24", wgrad_dense_fraction=1.0), x)
    for name in masked:
        torch.testing.assert_close(t24[name], masked[name], rtol=1e-12, atol=1e-12)


def test_compiled_reference_ops_give_the_eager_gradients():
    x = _x()
    eager = _grads(_mlp("masked-tokens24"), x)
    compiled = _grads(_mlp("masked-tokens24"), x, compile_backend="aot_eager")
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-12, atol=1e-12)


def _inductor_grads(model, x):
    """Gradients of one Inductor-compiled step (where the ELAS passes run) and its generated code."""
    from torch._inductor import config as inductor_config
    from torch._inductor.utils import run_and_get_code

    with inductor_config.patch(force_disable_caches=True):
        grads, code = run_and_get_code(lambda: _grads(model, x, compile_backend="inductor"))
    return grads, "\n".join(code)


def test_the_fused_op_computes_the_reference_gradients(monkeypatch):
    """kernels='triton' with ELAS_FUSED_ON_CPU: the fused op (its kernels' CPU references,
    elas::tokens24_compress and elas::cslt_mm included) against the readable reference ops, bf16."""
    monkeypatch.setenv("ELAS_FUSED_ON_CPU", "1")
    x = _x(62, dtype=torch.bfloat16)  # padded to 64 tokens inside the fused op
    ref = _grads(_mlp("masked-tokens24", dtype=torch.bfloat16, kernels="reference"), x)
    counters.clear()
    fused, code = _inductor_grads(_mlp("masked-tokens24", dtype=torch.bfloat16, kernels="triton"), x)
    assert counters["elas"]["lowrank_relu2_sparse24_linear_triton"] == 1
    assert code.count("torch.ops.elas.cslt_mm.default(") == 3  # the forward's and both weight gradients'
    for name in ref:
        rel = (fused[name].double() - ref[name].double()).norm() / ref[name].double().norm()
        assert rel < 0.02, name


def test_the_warm_up_is_dense_and_plain():
    x = _x()
    dense_masked = _mlp("masked")
    dense_t24 = _mlp("masked-tokens24")
    for m in (dense_masked, dense_t24):
        m[0].mlp.sparsity_mode = "dense"
    a, b = _grads(dense_masked, x), _grads(dense_t24, x)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-12, atol=1e-12)
    counters.clear()
    _, code = _inductor_grads(dense_t24, x)
    assert counters["elas"]["dense_tokens24_up_linear_to_linear"] == 1 and "torch.ops.elas" not in code


def test_config_errors_name_the_field_and_the_way_out():
    with pytest.raises(ConfigError, match=r"wgrad_dense_fraction=1.5.*\[0, 1\]"):
        elas_compile.ELASConfig(backward="masked-tokens24", wgrad_dense_fraction=1.5)
    with pytest.raises(ConfigError, match=r"wgrad_dense_fraction=0.1.*backward='masked-tokens24' only"):
        elas_compile.ELASConfig(wgrad_dense_fraction=0.1)
    with pytest.raises(ConfigError, match="masked-tokens24"):
        elas_compile.ELASConfig(backward="tokens24")
    assert elas_compile.ELASConfig(backward="masked-tokens24", wgrad_dense_fraction=0).wgrad_dense_fraction == 0


def test_the_mode_round_trips_through_checkpoints(tmp_path):
    cfg = elas_compile.ELASConfig(rank=16, dense_warmup_steps=1, backward="masked-tokens24", wgrad_dense_fraction=0.1)
    saved = elas_compile.apply(llama(), cfg)
    elas_compile.SparsitySchedule(saved).step()
    fresh = elas_compile.apply(llama(), cfg)
    fresh.load_state_dict(saved.state_dict())
    assert {(m.sparsity_mode, m.elas_backward) for _, m in elas_compile.elas_mlps(fresh)} == {("masked-tokens24",) * 2}
    elas_compile.save_pretrained(saved, tmp_path)
    loaded = elas_compile.from_pretrained(tmp_path)
    assert loaded.elas_config == cfg
    assert {m.sparsity_mode for _, m in elas_compile.elas_mlps(loaded)} == {"masked-tokens24"}
    masked_built = elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16))
    with pytest.raises(ELASError, match="rebuild the model with the checkpoint's ELASConfig"):
        masked_built.load_state_dict(saved.state_dict())


def test_explain_shows_the_mode():
    text = str(elas_compile.explain(_mlp("masked-tokens24", wgrad_dense_fraction=0.1)))
    assert "backward masked-tokens24: weight gradients 2:4 along tokens, the densest 10% of features dense" in text
    assert "elas.tokens24_up_linear" in text
