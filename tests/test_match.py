"""The structural MLP matcher: which graphs match, which are left alone, which are refused."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import elas_compile
from elas_compile.passes.model.match_mlp import Skip, match_mlp


class Gated(nn.Module):
    def __init__(self, act, gate_left=True, d=16, f=32):
        super().__init__()
        self.gate, self.up, self.down = nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False), nn.Linear(f, d, bias=False)
        self.act, self.gate_left = act, gate_left

    def forward(self, x):
        g, u = self.act(self.gate(x)), self.up(x)
        return self.down(g * u if self.gate_left else u * g)


class Fused(nn.Module):
    def __init__(self, how, d=16, f=32):
        super().__init__()
        self.gate_up, self.down, self.how, self.f = nn.Linear(d, 2 * f, bias=False), nn.Linear(f, d, bias=False), how, f

    def forward(self, x):
        h = self.gate_up(x)
        if self.how == "chunk":
            g, u = h.chunk(2, dim=-1)
        elif self.how == "split":
            g, u = h.split(self.f, dim=-1)
        else:
            u, g = torch.chunk(h, 2, -1)
        return self.down(F.silu(g) * u)


class Plain(nn.Module):
    def __init__(self, d=16, f=32):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(d, f), nn.Linear(f, d), nn.GELU()

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class NotMLP(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.a, self.b = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        return self.a(x) + self.b(x)


class MyTanhGELU(nn.Module):  # a user's own activation class: recognised by what it computes
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


@pytest.mark.parametrize("act,name", [(nn.SiLU(), "silu"), (F.silu, "silu"), (nn.GELU(), "gelu"),
                                      (nn.GELU(approximate="tanh"), "gelu_tanh"), (MyTanhGELU(), "gelu_tanh")])
@pytest.mark.parametrize("gate_left", [True, False])
def test_gated(act, name, gate_left):
    m = match_mlp(Gated(act, gate_left), "mlp")
    assert (m.kind, m.activation, m.gate, m.up, m.down, m.hidden, m.intermediate) == ("gated", name, "gate", "up", "down", 16, 32)


@pytest.mark.parametrize("how,gate_half", [("chunk", 0), ("split", 0), ("torch_chunk_swapped", 1)])
def test_fused(how, gate_half):
    m = match_mlp(Fused(how), "mlp")
    assert (m.kind, m.up, m.gate_half, m.intermediate) == ("fused", "gate_up", gate_half, 32)


def test_plain():
    m = match_mlp(Plain(), "mlp")
    assert (m.kind, m.activation, m.bias_up, m.bias_down) == ("plain", "gelu", True, True)


def test_not_an_mlp():
    skip = match_mlp(NotMLP(), "x")  # shaped like one (two d -> d linears), computes a sum
    assert isinstance(skip, Skip) and "output is not a projection" in skip.reason
    assert match_mlp(nn.Linear(4, 4), "x") is None


def test_unsupported_gate_is_refused_with_path_and_way_out():
    model = nn.Sequential(Gated(nn.Sigmoid()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(elas_compile.UnsupportedActivationError, match=r"(?s)0: a 'sigmoid' gate.*filter_fn"):
        elas_compile.apply(model)
    assert isinstance(model[0], Gated) and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class NanoGPTMLP(nn.Module):
    """nanoGPT's MLP: biases, GELU, a trailing dropout."""

    def __init__(self, d=16, p=0.1):
        super().__init__()
        self.c_fc, self.gelu, self.c_proj, self.dropout = nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(p)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


@pytest.mark.parametrize("p", [0.0, 0.1])
def test_dropout_is_kept_or_dropped_when_it_is_the_identity(p):
    m = match_mlp(NanoGPTMLP(p=p), "mlp")
    assert (m.kind, m.bias_up, m.bias_down) == ("plain", True, True)
    assert m.dropouts == (((("output", p),) if p else ()))
    assert any("p=0 after the down projection dropped" in n for n in m.notes) == (p == 0)
    seq = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 16), nn.Dropout(p))  # nanoGPT-style Sequential
    model = nn.Sequential(seq)
    elas_compile.apply(model, elas_compile.ELASConfig(rank=4, ffn_width_multiple=16))
    assert ("output_dropout_0" in model[0].code) == (p > 0)


def test_dropout_before_down_keeps_2_4_and_is_reported():
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.up, self.down = nn.Linear(16, 32, bias=False), nn.Linear(32, 16, bias=False)

        def forward(self, x):
            return self.down(F.dropout(F.relu(self.up(x)), p=0.2, training=self.training))

    model = nn.Sequential(Hidden())
    elas_compile.apply(model, elas_compile.ELASConfig(rank=4, ffn_width_multiple=16, dense_warmup_steps=0))
    mlp = model[0]
    assert "2:4 step and the down projection" in " ".join(mlp.elas_info["fused_kernel_blockers"])
    nodes = {n.name: n for n in mlp.graph.nodes}
    assert nodes["hidden_dropout_0"].args[0] is nodes["sparse_act"]  # after the 2:4 step: zeros stay zeros
    assert nodes["down_proj_vx"].args[0] is nodes["hidden_dropout_0"]
    assert mlp.hidden_dropout_0.p == 0.2


def test_conv1d_projections_with_biases():
    from transformers.pytorch_utils import Conv1D

    class GPT2MLP(nn.Module):
        def __init__(self, d=16):
            super().__init__()
            self.c_fc, self.c_proj, self.act = Conv1D(4 * d, d), Conv1D(d, 4 * d), nn.GELU(approximate="tanh")

        def forward(self, x):
            return self.c_proj(self.act(self.c_fc(x)))

    original = GPT2MLP()
    m = match_mlp(original, "mlp")
    assert (m.kind, m.hidden, m.intermediate, m.bias_up, m.bias_down) == ("plain", 16, 64, True, True)
    model = nn.Sequential(original)
    b_down = original.c_proj.bias.detach().clone()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=4, ffn_width_multiple=16, init="svd"))
    assert model[0].up_proj.u.shape == (64, 4)  # plain MLP: width 1.0x
    torch.testing.assert_close(model[0].down_proj.bias.detach(), b_down)  # biases carried over


class FusedOnDim(nn.Module):
    def __init__(self, dim, d=16, f=32):
        super().__init__()
        self.w13, self.w2, self.dim = nn.Linear(d, 2 * f, bias=False), nn.Linear(f, d, bias=False), dim

    def forward(self, x):
        g, u = self.w13(x).chunk(2, dim=self.dim)
        return self.w2(F.silu(g) * u)


def test_fused_split_on_a_positive_feature_dim_and_on_dim_0():
    assert match_mlp(FusedOnDim(2), "mlp").kind == "fused"  # the last dim of (batch, seq, features)
    skip = match_mlp(FusedOnDim(0), "mlp")
    assert isinstance(skip, Skip) and "split on dim 0, not on the features" in skip.reason


class XIELULike(nn.Module):
    """An activation with learnable parameters: replaced by ReLU² anyway in a plain MLP."""

    def __init__(self):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(0.8))

    def forward(self, x):
        return torch.where(x > 0, self.alpha * x * x + x, torch.expm1(x) - self.alpha * x)


def test_any_elementwise_activation_of_a_plain_mlp():
    class Up(nn.Module):
        def __init__(self, act):
            super().__init__()
            self.up, self.down, self.act = nn.Linear(16, 32), nn.Linear(32, 16), act

        def forward(self, x):
            return self.down(self.act(self.up(x)))

    m = match_mlp(Up(XIELULike()), "mlp")
    assert (m.kind, m.activation) == ("plain", "unknown") and "learnable parameters (alpha)" in m.notes[0]
    skip = match_mlp(Up(nn.LayerNorm(32)), "mlp")  # not elementwise: a norm is no activation
    assert isinstance(skip, Skip) and "LayerNorm" in skip.reason
    skip = match_mlp(Up(nn.Identity()), "mlp")
    assert isinstance(skip, Skip)


class Stashing(Gated):
    """An MLP whose forward stashes an aux value and counts its calls."""

    def __init__(self):
        super().__init__(nn.SiLU())
        self.calls = 0

    def forward(self, x):
        self.aux = x.mean()
        self.calls += 1
        return super().forward(x)


def test_matching_leaves_no_state_and_names_the_side_effect():
    mlp = Stashing()
    model = nn.Sequential(mlp)
    before = dict(mlp.__dict__)
    with pytest.raises(elas_compile.NothingMatchedError, match=r"writes the attribute\(s\) aux, calls"):
        elas_compile.apply(model)
    assert mlp.__dict__ == before and not hasattr(mlp, "aux") and mlp.calls == 0


def test_reasons_in_words():
    class TwoInputs(Gated):
        def forward(self, x, residual):
            return super().forward(x) + residual

    class Scaled(Gated):
        def forward(self, x):
            return super().forward(x) * 2.0

    skip = match_mlp(TwoInputs(nn.SiLU()), "mlp")
    assert "takes 2 inputs (x, residual)" in skip.reason
    assert "output is not a projection's but mul's" in match_mlp(Scaled(nn.SiLU()), "mlp").reason
