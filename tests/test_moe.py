"""Routed experts stored as stacked parameters: the grouped op, matching by layout and probe, the
ELAS experts against a per-token reference, keep mode, accounting and the sparsity schedule."""
import pytest
import torch
import torch.nn as nn

import elas_compile
from elas_compile.kernels import reference
from elas_compile.passes.model.experts import ELASExperts
from elas_compile.passes.model.grouped_linear import grouped_linear
from elas_compile.passes.model.match_experts import match_experts
from elas_compile.passes.model.match_mlp import Skip
from tiny_models import family


class StackedExperts(nn.Module):
    """transformers 5's experts contract, written here: gate_up_proj (E, 2F, d), or (E, d, 2F) when
    transposed, down_proj (E, d, F) / (E, F, d), optional biases, gate and up halves concatenated or
    interleaved; forward(hidden_states, top_k_index, top_k_weights) loops over the routed pairs."""

    def __init__(self, e=4, d=16, f=32, transposed=False, bias=False, interleaved=False, scale_out=1.0):
        super().__init__()
        self.num_experts, self.transposed, self.interleaved, self.scale_out = e, transposed, interleaved, scale_out
        self.gate_up_proj = nn.Parameter(torch.randn(e, d, 2 * f) if transposed else torch.randn(e, 2 * f, d))
        self.down_proj = nn.Parameter(torch.randn(e, f, d) if transposed else torch.randn(e, d, f))
        if bias:
            self.gate_up_proj_bias = nn.Parameter(torch.randn(e, 2 * f))
            self.down_proj_bias = nn.Parameter(torch.randn(e, d))
        self.is_transposed, self.act_fn = transposed, nn.SiLU()

    def _apply_gate(self, gate_up):
        gate, up = (gate_up[..., ::2], gate_up[..., 1::2]) if self.interleaved else gate_up.chunk(2, dim=-1)
        return self.act_fn(gate) * up

    def forward(self, hidden_states, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden_states)
        for t in range(hidden_states.shape[0]):
            for j in range(top_k_index.shape[1]):
                e = int(top_k_index[t, j])
                w_up, w_down = self.gate_up_proj[e], self.down_proj[e]
                h = hidden_states[t] @ (w_up if self.transposed else w_up.t())
                if hasattr(self, "gate_up_proj_bias"):
                    h = h + self.gate_up_proj_bias[e]
                y = self._apply_gate(h) @ (w_down if self.transposed else w_down.t())
                if hasattr(self, "down_proj_bias"):
                    y = y + self.down_proj_bias[e]
                out[t] += top_k_weights[t, j] * y * self.scale_out
        return out


class TinyMoE(nn.Module):
    def __init__(self, experts, d=16, k=2):
        super().__init__()
        self.router, self.experts, self.k = nn.Linear(d, experts.num_experts, bias=False), experts, k

    def forward(self, x):
        weights, index = torch.topk(self.router(x).softmax(-1), self.k, dim=-1)
        return self.experts(x, index, weights)


def test_grouped_linear_is_a_linear_per_expert():
    x, w = torch.randn(7, 5, requires_grad=True), torch.randn(3, 4, 5, requires_grad=True)
    counts = torch.tensor([2, 0, 5])
    out = grouped_linear(x, w, counts)
    want = torch.cat([x[:2] @ w[0].t(), x[2:] @ w[2].t()])
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    wx, ww = torch.autograd.grad(want, (x, w), g)
    torch.testing.assert_close(gx, wx)
    torch.testing.assert_close(gw, ww)
    torch.library.opcheck(torch.ops.elas.grouped_linear.default, (x, w, counts))


@pytest.mark.parametrize("transposed,bias,interleaved",
                         [(False, False, False), (True, True, False), (False, True, True)])
def test_layouts_are_read_and_checked_on_a_probe(transposed, bias, interleaved):
    m = match_experts(StackedExperts(transposed=transposed, bias=bias, interleaved=interleaved), "experts")
    assert (m.kind, m.num_experts, m.hidden, m.intermediate, m.transposed, m.interleaved, m.bias_up, m.bias_down) == (
        "gated", 4, 16, 32, transposed, interleaved, bias, bias)
    assert m.gate_half == 0 and m.dispatch == "routed"


def test_experts_computing_something_else_are_left_with_the_reason():
    skip = match_experts(StackedExperts(scale_out=2.0), "experts")
    assert isinstance(skip, Skip) and "on a probe" in skip.reason


def _reference(new: ELASExperts, x, index, weights, mode):
    """sum_k w_k · down_e(sparsify24(relu(up_e(x))²)) token by token, from the factors."""
    up, down = new.up_proj, new.down_proj
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(index.shape[1]):
            e = int(index[t, j])
            y = (up.u[e] @ (up.v[e] @ x[t])) + (up.bias[e] if up.bias is not None else 0)
            s = torch.relu(y) ** 2
            s = reference.sparsify24(s[None])[0] if mode != "dense" else s
            z = down.u[e] @ (down.v[e] @ s) + (down.bias[e] if down.bias is not None else 0)
            out[t] = out[t] + weights[t, j] * z
    return out


@pytest.mark.parametrize("bias,warmup", [(False, 0), (True, 0), (False, 5)])
def test_elas_experts_equal_a_per_token_reference(bias, warmup):
    model = nn.Sequential(TinyMoE(StackedExperts(bias=bias)))
    elas_compile.apply(model, elas_compile.ELASConfig(rank=8, dense_warmup_steps=warmup, ffn_width_multiple=16))
    new = model[0].experts
    assert isinstance(new, ELASExperts) and new.up_proj.u.shape == (4, 48, 8)  # 1.5 x 32, rank 8
    assert (new.up_proj.bias is not None) == bias
    x = torch.randn(6, 16)
    weights, index = torch.topk(model[0].router(x).softmax(-1), 2, dim=-1)
    got = new(x, index, weights)
    want = _reference(new, x, index, weights, new.sparsity_mode)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    params = list(new.parameters())
    for g, w in zip(torch.autograd.grad(got.square().sum(), params), torch.autograd.grad(want.square().sum(), params)):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)


def test_tokens24_backward_says_the_experts_keep_the_exact_weight_gradients():
    from elas_compile.diagnostics import reset_warnings

    reset_warnings()
    model = nn.Sequential(TinyMoE(StackedExperts(bias=False)))
    with pytest.warns(UserWarning, match="routed experts compute the exact masked weight gradients"):
        elas_compile.apply(model, elas_compile.ELASConfig(rank=8, dense_warmup_steps=0, ffn_width_multiple=16,
                                                          backward="masked-tokens24"))
    assert isinstance(model[0].experts, ELASExperts) and model[0].experts.elas_backward == "masked-tokens24"


def test_keep_leaves_the_experts_with_the_reason():
    model = family("qwen2_moe")  # shared experts are MLPs: rewritten either way
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, experts="keep"))
    assert not any(isinstance(m, ELASExperts) for m in model.modules())
    left = dict(model.elas_summary.left)
    assert left["model.layers.0.mlp.experts"] == "routed experts kept, as ELASConfig(experts='keep') asks"
    with pytest.raises(elas_compile.NothingMatchedError, match=r"experts='keep'"):
        elas_compile.apply(family("mixtral"), elas_compile.ELASConfig(rank=16, experts="keep"))


@pytest.mark.parametrize("name", ["mixtral", "qwen2_moe", "llama4"])
def test_explain_counts_the_experts(name):
    model = family(name)
    before = sum(p.numel() for p in model.parameters())
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16))
    report = elas_compile.explain(model)
    after = sum(p.numel() for p in model.parameters())
    assert before - after == report.totals["params_before"] - report.totals["params_after"]
    assert any(r["kind"] == "experts/gated x4" for r in report.rows)
    assert "per routed (token, expert) pair" in str(report)


def test_schedule_switches_the_experts_too():
    model = family("mixtral")
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=1))
    schedule = elas_compile.SparsitySchedule(model)
    experts = [m for m in model.modules() if isinstance(m, ELASExperts)]
    assert experts and {m.sparsity_mode for m in experts} == {"dense"}
    schedule.step()
    assert {m.sparsity_mode for m in experts} == {"masked"}


def test_meta_experts_are_matched_from_their_layout():
    with torch.device("meta"):
        model = family("mixtral")
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16))
    assert all(p.is_meta for p in model.parameters())
    assert sum(isinstance(m, ELASExperts) for m in model.modules()) == 2


def test_elas_experts_compile_where_the_models_own_loop_does_not():
    ids = torch.randint(3, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    original = family("mixtral")
    original.config._experts_implementation = "eager"  # transformers' per-expert loop (default: grouped_mm)
    with pytest.raises(Exception, match="data-dependent"):  # the model's code: its loop over routed experts
        torch.compile(original, backend="aot_eager", fullgraph=True)(input_ids=ids)
    torch._dynamo.reset()
    model = family("mixtral")
    model.config._experts_implementation = "eager"
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=0))
    model.eval()
    eager = model(input_ids=ids).logits
    torch.testing.assert_close(torch.compile(model, backend="aot_eager", fullgraph=True)(input_ids=ids).logits, eager)
