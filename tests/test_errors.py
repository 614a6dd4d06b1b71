"""Bad input: clear errors naming the module and the way out; the model is left unchanged."""
import pytest
import torch
import torch.nn as nn

import elas_compile
from tiny_models import MODELS


def _snapshot(model):
    return [(n, type(m)) for n, m in model.named_modules()], {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, snap):
    mods, state = snap
    assert [(n, type(m)) for n, m in model.named_modules()] == mods
    now = model.state_dict()
    assert now.keys() == state.keys() and all(torch.equal(now[k], v) for k, v in state.items())


def test_compiled_model_is_refused():
    model = MODELS["llama"]()
    with pytest.raises(elas_compile.AlreadyCompiledError, match="first, then torch.compile"):
        elas_compile.apply(torch.compile(model))


def test_applying_twice_is_refused():
    model = MODELS["llama"]()
    elas_compile.apply(model)
    snap = _snapshot(model)
    with pytest.raises(elas_compile.AlreadyAppliedError, match="model.layers.0.mlp"):
        elas_compile.apply(model)
    _unchanged(model, snap)


def test_nothing_matched():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    snap = _snapshot(model)
    with pytest.raises(elas_compile.NothingMatchedError, match="nothing was changed"):
        elas_compile.apply(model)
    _unchanged(model, snap)


def test_width_not_multiple_of_4_is_refused_and_model_unchanged():
    model = MODELS["llama"]()
    snap = _snapshot(model)
    cfg = elas_compile.ELASConfig(ffn_width_multiple=3, ffn_width_multiplier=1.0)  # 128 -> 129
    with pytest.raises(elas_compile.ShapeError, match=r"model.layers.0.mlp.*multiple of 4.*ffn_width_multiple"):
        elas_compile.apply(model, cfg)
    _unchanged(model, snap)


def test_error_in_a_later_layer_leaves_earlier_layers_untouched():
    model = MODELS["llama"]()
    model.model.layers[1].mlp.act_fn = nn.Sigmoid()  # unsupported gate, second block only
    snap = _snapshot(model)
    with pytest.raises(elas_compile.UnsupportedActivationError, match="model.layers.1.mlp"):
        elas_compile.apply(model)
    _unchanged(model, snap)


@pytest.mark.parametrize("kwargs", [dict(rank=0), dict(rank=1.5), dict(backward="exact"), dict(lowrank_form="x"),
                                    dict(targets=("attention",)), dict(init="zeros"), dict(dense_warmup_steps=-1),
                                    dict(experts="drop"), dict(ffn_width_multiplier=0.0)])
def test_bad_config(kwargs):
    with pytest.raises(elas_compile.ConfigError, match="ELASConfig"):  # an ELASError, so a ValueError
        elas_compile.ELASConfig(**kwargs)


def test_wrong_config_type():
    with pytest.raises(TypeError, match="ELASConfig"):
        elas_compile.apply(MODELS["llama"](), {"rank": 4})


def test_a_compiled_submodule_is_refused_by_path():
    model = MODELS["llama"]()
    model.model.layers[1].mlp = torch.compile(model.model.layers[1].mlp)
    snap = _snapshot(model)
    with pytest.raises(elas_compile.AlreadyCompiledError, match=r"model\.layers\.1\.mlp.*originals would keep running"):
        elas_compile.apply(model)
    _unchanged(model, snap)


def test_every_unsupported_gate_is_named_at_once():
    model = MODELS["llama"]()
    for layer in model.model.layers:
        layer.mlp.act_fn = nn.Sigmoid()
    with pytest.raises(elas_compile.UnsupportedActivationError) as info:
        elas_compile.apply(model)
    assert info.value.modules == [("model.layers.0.mlp", "sigmoid"), ("model.layers.1.mlp", "sigmoid")]
    assert "fqn not in {'model.layers.0.mlp', 'model.layers.1.mlp'}" in str(info.value)


def test_rank_not_below_the_factor_sizes_is_refused():
    model = MODELS["llama"]()  # hidden size 64
    snap = _snapshot(model)
    with pytest.raises(elas_compile.ShapeError, match=r"model.layers.0.mlp.*rank 64 is not below min\(hidden 64"):
        elas_compile.apply(model, elas_compile.ELASConfig(rank=64))
    _unchanged(model, snap)


def test_nothing_matched_lists_each_reason_once_per_kind():
    class Residual(nn.Module):  # Bloom/MPT style: the residual goes through the MLP
        def __init__(self):
            super().__init__()
            self.up, self.down = nn.Linear(8, 32), nn.Linear(32, 8)

        def forward(self, x, residual):
            return self.down(torch.relu(self.up(x))) + residual

    model = nn.ModuleList([Residual() for _ in range(5)])
    with pytest.raises(elas_compile.NothingMatchedError) as info:
        elas_compile.apply(model)
    assert len(info.value.reasons) == 5
    assert "0, 1, 2 and 2 more: its forward takes 2 inputs (x, residual); an MLP takes one" in str(info.value)
