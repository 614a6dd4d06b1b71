"""elas_compile.integrations.torchtitan: ELAS as a torchtitan model converter, through torchtitan's
own flow (config -> converter -> build on the meta device -> to_empty -> init_weights). Runs where
the PyPI ``torchtitan`` is installed (pip install --no-deps torchtitan spmd_types einops tyro
docstring_parser is enough here), else skips."""
import math

import pytest
import torch

import elas_compile

pytest.importorskip("torchtitan.protocols.model", reason="torchtitan is not installed")
from elas_compile.integrations.torchtitan import ELASConverter, elas_modules  # noqa: E402
from torchtitan.models.llama3 import model_registry  # noqa: E402

CFG = elas_compile.ELASConfig(rank=32, dense_warmup_steps=0)


def _debugmodel(layers=2):
    config = model_registry("debugmodel").model  # dim 256, vocab 2048, flex attention
    config.layers = config.layers[:layers]
    return config


def _meta_built(config):
    with torch.device("meta"):
        model = config.build()
    model.verify_module_protocol()  # what torchtitan's trainer checks after building
    model.to_empty(device="cpu")
    with torch.no_grad():
        model.init_weights(buffer_device=None)
    return model


def test_converter_builds_an_elas_model_that_torchtitan_initialises():
    original = _debugmodel()
    converted = ELASConverter.Config(elas=CFG).build().convert(original)
    assert isinstance(converted, type(original))  # torchtitan's isinstance checks keep passing
    model = _meta_built(converted)
    assert [r.what for r in model.elas_summary.rewritten] == ["mlp/gated"] * 2
    for m in elas_modules(model):
        if isinstance(m, elas_compile.LowRankLinear):  # kaiming-uniform factors, as an eager apply gives
            assert m.u.std().item() == pytest.approx(1 / math.sqrt(3 * m.rank), rel=0.1)
            assert m.v.std().item() == pytest.approx(1 / math.sqrt(3 * m.in_features), rel=0.1)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    tokens = torch.randint(0, 2048, (1, 16), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(16)[None]
    with torch.no_grad():  # torchtitan's flex attention has no CPU backward
        logits = model(tokens, positions, model.get_attention_masks(positions))
    assert logits.shape == (1, 16, 2048) and torch.isfinite(logits).all()


def test_the_elas_feed_forward_trains_inside_a_torchtitan_block():
    model = _meta_built(ELASConverter.Config(elas=CFG).build().convert(_debugmodel(1)))
    ffn = model.layers["0"].feed_forward
    loss = ffn(torch.randn(2, 8, 256)).square().mean()
    loss.backward()
    assert ffn.up_proj.u.grad is not None and torch.isfinite(ffn.up_proj.u.grad).all()


def test_attention_targets_are_refused_with_the_way_out():
    with pytest.raises(elas_compile.ConfigError, match=r"targets=\('ffn',\)"):
        ELASConverter.Config(elas=elas_compile.ELASConfig(targets=("ffn", "attention"))).build()
