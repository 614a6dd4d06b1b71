"""The Inductor passes: they match, rewrite (counted), chain with a user's pass, and keep numerics."""
import contextlib
import warnings

import pytest
import torch
from torch._dynamo.utils import counters
from torch._inductor import config as inductor_config

import elas_compile
from elas_compile.passes import inductor as elas_inductor
from elas_compile.passes.eligibility import _warned
from tiny_models import MODELS, VOCAB, loss_of


def pre_grad_then_aot_eager(gm, example_inputs):
    """Inductor's pre-grad step with our pass, then AOTAutograd without codegen (fast on CPU)."""
    from torch._dynamo.backends.common import aot_autograd

    elas_inductor.ELASPreGradPass()(gm.graph)
    gm.recompile()
    return aot_autograd(fw_compiler=lambda g, _: g, bw_compiler=lambda g, _: g)(gm, example_inputs)


def _bf16_model(warmup):
    torch.manual_seed(0)
    model = MODELS["llama"]().to(torch.bfloat16)
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=warmup))
    return model


def test_pre_grad_pass_fuses_the_ffn_and_matches_eager(monkeypatch):
    monkeypatch.setenv("ELAS_FORCE_FUSED", "1")  # run the fused op's reference on CPU
    counters.clear()
    model = _bf16_model(warmup=1)
    sched = elas_compile.SparsitySchedule(model)
    compiled = torch.compile(model, fullgraph=True)  # real Inductor: its pre-grad hook runs our pass
    ids = torch.randint(3, VOCAB, (2, 64))
    # no caches: on a cache hit torch >= 2.13 skips pre-grad passes that have a uuid (and the counters)
    stack = contextlib.ExitStack()
    stack.enter_context(inductor_config.patch(force_disable_caches=True))
    for step in range(2):
        loss = loss_of(compiled, ids)
        ref = loss_of(model, ids)
        torch.testing.assert_close(loss.float(), ref.float(), atol=2e-2, rtol=1e-2)
        loss.backward()
        sched.step()
    stack.close()
    assert counters["elas"]["dense_sparsify24_removed"] == 2  # warm-up graph: 2 blocks
    assert counters["elas"]["lowrank_relu2_sparse24_linear_fused"] == 2  # sparse graph
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_pre_grad_fallback_warns_once_with_the_reason(monkeypatch):
    monkeypatch.delenv("ELAS_FORCE_FUSED", raising=False)
    _warned.clear()
    counters.clear()
    model = _bf16_model(warmup=0)
    compiled = torch.compile(model, fullgraph=True, backend=pre_grad_then_aot_eager)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loss_of(compiled, torch.randint(3, VOCAB, (2, 64))).backward()
    msgs = [str(w.message) for w in seen if "reference path" in str(w.message)]
    assert len(msgs) == 1 and "device cpu" in msgs[0]
    assert counters["elas"]["relu2_sparsify24_fused_pre_grad"] == 2
    assert counters["elas"]["lowrank_relu2_sparse24_linear_fused"] == 0


def test_post_grad_pass_fuses_relu2_sparsify():
    counters.clear()

    def f(x):
        return torch.ops.elas.sparsify24(torch.relu(x) ** 2, "masked") * 3

    x = torch.randn(8, 32)
    # no cache: a cached graph from an earlier run would skip the post-grad passes (and the counter)
    with inductor_config.patch(pre_grad_custom_pass=None, post_grad_custom_post_pass=elas_inductor.ELASPostGradPass(),
                               fx_graph_cache=False), torch._functorch.config.patch(enable_autograd_cache=False):
        out = torch.compile(f, fullgraph=True)(x)
    assert counters["elas"]["relu2_sparsify24_fused_post_grad"] == 1
    torch.testing.assert_close(out, f(x))


def test_install_chains_a_users_pass():
    calls = []

    def user_pass(graph):
        calls.append(len(graph.nodes))

    with inductor_config.patch(pre_grad_custom_pass=user_pass, post_grad_custom_post_pass=None,
                               force_disable_caches=True):
        elas_inductor.install()
        elas_inductor.install()  # idempotent
        passes = inductor_config.pre_grad_custom_pass.passes  # one callable: torch 2.11 takes no list
        assert passes[0] is user_pass and sum(isinstance(p, elas_inductor.ELASPreGradPass) for p in passes) == 1
        torch.compile(lambda x: torch.relu(x) + 1)(torch.randn(4))
    assert calls, "the user's pass still runs"
    assert elas_inductor.ChainedPass([user_pass]).uuid() is None  # no uuid: Inductor must not cache it


def test_autocast_runs_the_ops_in_the_autocast_dtype():
    x = torch.randn(4, 16)
    w = torch.randn(8, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.ops.elas.sparse24_linear(x.bfloat16(), w, "masked")
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert w.grad.dtype == torch.float32


def test_uuid_is_a_real_hash():
    a, b = elas_inductor.ELASPreGradPass(), elas_inductor.ELASPostGradPass()
    assert isinstance(a.uuid(), bytes) and len(a.uuid()) == 32 and a.uuid() != b.uuid()
    assert a.uuid() == elas_inductor.ELASPreGradPass().uuid()


@pytest.fixture(autouse=True)
def _restore_inductor_config():
    saved = (inductor_config.pre_grad_custom_pass, inductor_config.post_grad_custom_post_pass)
    yield
    inductor_config.pre_grad_custom_pass, inductor_config.post_grad_custom_post_pass = saved
