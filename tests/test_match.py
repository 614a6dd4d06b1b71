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
