"""merge(): U·V merged into dense nn.Linear weights, the 2:4 mask kept in plain torch ops."""
import pytest
import torch

import elas_compile
from elas_compile.lowrank import LowRankLinear
from elas_compile.merge import ReLU2MLP
from elas_compile.passes.model.rewrite_mlp import ELASMLP
from tiny_models import VOCAB, llama


def _ids():
    return torch.randint(3, VOCAB, (2, 16), generator=torch.Generator().manual_seed(2))


@torch.no_grad()
def _logits(model):
    return model.eval()(input_ids=_ids()).logits


def _elas(sparse=True, **kw):
    model = elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, dense_warmup_steps=0 if sparse else 10, **kw))
    return model


@pytest.mark.parametrize("sparse", [True, False])
def test_merged_model_computes_the_elas_function(sparse):
    model = _elas(sparse, targets=("ffn", "attention")).double()
    want = _logits(model)
    elas_compile.merge(model)
    assert not any(isinstance(m, (ELASMLP, LowRankLinear)) for m in model.modules())
    assert not hasattr(model, "elas_config")
    mlp = model.model.layers[0].mlp
    assert isinstance(mlp, ReLU2MLP) and mlp.sparse_24 == sparse and mlp.up_proj.weight.shape == (256, 64)
    assert isinstance(model.model.layers[0].self_attn.q_proj, torch.nn.Linear)
    torch.testing.assert_close(_logits(model), want, rtol=1e-10, atol=1e-10)


def test_the_mask_matters_and_is_kept():
    model = _elas(True)
    want = _logits(model)
    elas_compile.merge(model)
    torch.testing.assert_close(_logits(model), want, rtol=1e-4, atol=1e-4)  # float32: rounding only
    for layer in model.model.layers:
        layer.mlp.sparse_24 = False
    assert (_logits(model) - want).abs().max().item() > 1e-3


def test_merged_mlp_exports_without_elas_ops():
    model = elas_compile.merge(_elas(True))
    mlp = model.model.layers[0].mlp
    exported = torch.export.export(mlp, (torch.randn(2, 5, 64),))
    code = str(exported.graph)
    assert "elas" not in code and "aten.linear" in code


def test_cola_is_refused_and_the_model_left_unchanged():
    model = _elas(True, lowrank_form="cola")
    with pytest.raises(elas_compile.ELASError, match=r"model\.layers\.0\.mlp\.up_proj.*CoLA"):
        elas_compile.merge(model)
    assert len(elas_compile.elas_mlps(model)) == 2


def test_a_model_without_elas_is_refused():
    with pytest.raises(elas_compile.ELASError, match="without ELAS MLPs"):
        elas_compile.merge(llama())


def test_routed_experts_are_refused():
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=VOCAB, num_local_experts=4, num_experts_per_tok=2)
    model = elas_compile.apply(MixtralForCausalLM(config), elas_compile.ELASConfig(rank=16))
    with pytest.raises(elas_compile.ELASError, match=r"not routed experts \(model\.layers\.0\.mlp\.experts\)"):
        elas_compile.merge(model)
