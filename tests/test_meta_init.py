"""ELAS models built on the meta device: every init flow gives the factors the eager init's
distribution; init='svd' there is refused with the module's name."""
import math

import pytest
import torch

import elas_compile
from elas_compile.lowrank import LowRankLinear
from tiny_models import VOCAB, HandLlama

CFG = elas_compile.ELASConfig(rank=16, dense_warmup_steps=0)


def _llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64)


def _meta_llama(config=CFG):
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_llama_config())
    elas_compile.apply(model, config)
    model.to_empty(device="cpu")
    return model


def _factor_stds(model):
    """{(path, 'u'|'v'): (std, fan_in)} of every LowRankLinear's factors."""
    out = {}
    for path, m in model.named_modules():
        if isinstance(m, LowRankLinear):
            out[(path, "u")] = (m.u.std().item(), m.rank)
            out[(path, "v")] = (m.v.std().item(), m.in_features)
    return out


def _assert_eager_distribution(model):
    from transformers import AutoModelForCausalLM

    eager = elas_compile.apply(AutoModelForCausalLM.from_config(_llama_config()), CFG)
    got, want = _factor_stds(model), _factor_stds(eager)
    assert got.keys() == want.keys() and got
    for key, (std, fan_in) in got.items():
        uniform_std = 1 / math.sqrt(3 * fan_in)  # kaiming-uniform, a=sqrt(5): bound 1/sqrt(fan_in)
        assert std == pytest.approx(want[key][0], rel=0.1), key
        assert std == pytest.approx(uniform_std, rel=0.1), key
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _assert_eager_distribution_of_factors_only(model):
    for (path, which), (std, fan_in) in _factor_stds(model).items():
        assert std == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.1), (path, which)


def test_transformers_init_weights_initialises_the_factors():
    model = _meta_llama()
    model.init_weights()
    _assert_eager_distribution(model)
    q = model.model.layers[0].self_attn.q_proj.weight  # transformers' own init still runs
    assert q.std().item() == pytest.approx(0.02, rel=0.1)
    logits = model(input_ids=torch.randint(3, VOCAB, (1, 8))).logits
    assert torch.isfinite(logits).all()


def test_fsdp2_recipe_reset_parameters_on_every_module():
    model = _meta_llama(elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")))
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    _assert_eager_distribution_of_factors_only(model)


def test_torchtitan_style_block_init_weights_reaches_the_elas_mlp():
    with torch.device("meta"):
        model = HandLlama(d=128, f=256)
    elas_compile.apply(model, CFG)
    model.to_empty(device="cpu")
    for block in model.blocks:  # torchtitan's blocks call feed_forward.init_weights(std)
        block.feed_forward.init_weights(0.02)
    _assert_eager_distribution_of_factors_only(model)


def test_svd_init_on_a_meta_model_names_the_module_and_changes_nothing():
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_llama_config())
    with pytest.raises(elas_compile.ELASError, match=r"module 'model\.embed_tokens' is on the meta device.*init='random'"):
        elas_compile.apply(model, elas_compile.ELASConfig(rank=16, init="svd"))
    assert not elas_compile.elas_mlps(model) and not hasattr(model, "elas_config")


def test_svd_from_a_meta_linear_is_refused():
    with torch.device("meta"):
        linear = torch.nn.Linear(64, 32, bias=False)
    with pytest.raises(elas_compile.ELASError, match="64 -> 32 nn.Linear is on the meta device"):
        LowRankLinear.from_linear(linear, 8, "plain", "svd")


def test_transformers_init_weights_initialises_routed_experts_factors():
    from transformers import AutoModelForCausalLM, MixtralConfig

    config = MixtralConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=VOCAB, num_local_experts=4, num_experts_per_tok=2)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    elas_compile.apply(model, CFG)
    model.to_empty(device="cpu")
    model.init_weights()
    (_, experts), = [(p, m) for p, m in elas_compile.elas_mlps(model) if "experts" in m.elas_info["kind"]]
    for stacked in (experts.up_proj, experts.down_proj):
        for e in range(stacked.num_experts):
            assert stacked.u[e].std().item() == pytest.approx(1 / math.sqrt(3 * stacked.rank), rel=0.1)
            assert stacked.v[e].std().item() == pytest.approx(1 / math.sqrt(3 * stacked.in_features), rel=0.1)


def test_fsdp2_sharded_factors_reset_after_to_empty(tmp_path):
    """FSDP2's recipe on real DTensor shards (one process, gloo)."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with torch.device("meta"):
            model = HandLlama(d=128, f=256)
        elas_compile.apply(model, elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")))
        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        model.to_empty(device="cpu")
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for path, m in model.named_modules():
            if isinstance(m, LowRankLinear):
                assert type(m.u).__name__ == "DTensor", path
                assert m.u.full_tensor().std().item() == pytest.approx(1 / math.sqrt(3 * m.rank), rel=0.1), path
                assert m.v.full_tensor().std().item() == pytest.approx(1 / math.sqrt(3 * m.in_features), rel=0.1), path
    finally:
        dist.destroy_process_group()
