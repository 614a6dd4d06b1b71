"""apply() on the LLaMA family and a hand-written model: structure, numerics, training, state."""
import pytest
import torch

import elas_compile
from elas_compile.passes.model.rewrite_mlp import ELASMLP
from tiny_models import MODELS, VOCAB, loss_of

CFG = elas_compile.ELASConfig(rank=16, dense_warmup_steps=0)


def _ids(b=2, t=16):
    return torch.randint(3, VOCAB, (b, t))


@pytest.mark.parametrize("name", list(MODELS))
def test_rewrite_forward_backward(name):
    model = MODELS[name]()
    elas_compile.apply(model, CFG)
    mlps = elas_compile.elas_mlps(model)
    assert len(mlps) == 2 and all(m.elas_info["new_intermediate"] == 256 for _, m in mlps)
    code = mlps[0][1].code
    for piece in ("up_proj_v", "relu", "** 2", "torch.ops.elas.sparsify24", "torch.ops.elas.sparse24_linear", "down_proj"):
        assert piece in code
    loss = loss_of(model, _ids())
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["llama", "hand_llama"])
def test_parameter_formula_equals_real_count(name):
    model = MODELS[name]()
    n_before = sum(p.numel() for p in model.parameters())
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")))
    report = elas_compile.explain(model)
    n_after = sum(p.numel() for p in model.parameters())
    assert n_before - n_after == report.totals["params_before"] - report.totals["params_after"]
    text = str(report)
    assert "TOTAL" in text and "torch.ops.elas.sparsify24" in text


def test_training_lowers_loss():
    torch.manual_seed(0)
    model = MODELS["llama"]()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=5))
    sched = elas_compile.SparsitySchedule(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = _ids(4, 32)
    losses = []
    for _ in range(40):
        loss = loss_of(model, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert sched.sparse_active
    assert losses[-1] < 0.7 * losses[0], losses


def test_state_dict_roundtrip():
    a = MODELS["llama"]()
    elas_compile.apply(a, CFG)
    b = MODELS["llama"]()
    elas_compile.apply(b, CFG)
    b.load_state_dict(a.state_dict())
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(a(ids).logits, b(ids).logits)


def test_schedule_switches_modes_and_resumes():
    model = MODELS["llama"]()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=2, backward="ste"))
    sched = elas_compile.SparsitySchedule(model)
    modes = lambda: {m.sparsity_mode for _, m in elas_compile.elas_mlps(model)}  # noqa: E731
    assert modes() == {"dense"}
    sched.step()
    assert modes() == {"dense"}
    sched.step()
    assert modes() == {"ste"}
    other = elas_compile.SparsitySchedule(model, warmup_steps=10)
    other.load_state_dict(sched.state_dict())
    assert other.sparse_active and modes() == {"ste"}


def test_no_sparsity_is_dense_lowrank():
    model = MODELS["llama"]()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, sparsity=False))
    code = elas_compile.elas_mlps(model)[0][1].code
    assert "sparsify24" not in code and "relu" in code


def test_cola_form_and_svd_init():
    from elas_compile.diagnostics import reset_warnings

    reset_warnings()
    model = MODELS["llama"]()
    with pytest.warns(UserWarning, match="svd"):
        elas_compile.apply(model, elas_compile.ELASConfig(rank=16, lowrank_form="cola", init="svd"))
    assert "silu" in elas_compile.elas_mlps(model)[0][1].code
    assert torch.isfinite(loss_of(model, _ids()))


def test_svd_init_of_attention_is_the_best_low_rank_approximation():
    model = MODELS["llama"]()
    w = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, init="svd", targets=("ffn", "attention")))
    q = model.model.layers[0].self_attn.q_proj
    u, s, vh = torch.linalg.svd(w)
    best = u[:, :16] @ torch.diag(s[:16]) @ vh[:16]  # Eckart-Young: the best rank-16 approximation
    torch.testing.assert_close(q.u @ q.v, best, atol=1e-4, rtol=1e-4)


def test_filter_fn_limits_the_rewrite():
    model = MODELS["llama"]()
    elas_compile.apply(model, CFG, filter_fn=lambda mod, fqn: not fqn.startswith("model.layers.1"))
    assert isinstance(model.model.layers[0].mlp, ELASMLP)
    assert not isinstance(model.model.layers[1].mlp, ELASMLP)


def test_deepcopy_keeps_elas_modules():
    import copy

    model = MODELS["llama"]()
    elas_compile.apply(model, CFG)
    twin = copy.deepcopy(model)
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, twin(ids).logits)
    assert len(elas_compile.elas_mlps(twin)) == 2


def test_summary_says_what_was_rewritten_and_what_was_left():
    from tiny_models import family

    model = family("qwen2_moe")
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")))
    summary = model.elas_summary
    whats = {r.what for r in summary.rewritten}
    assert whats == {"mlp/gated", "experts/gated", "attention q/k/v", "attention o"}
    text = str(elas_compile.explain(model))
    assert "rewritten: " in text and "notes on rewritten modules:" in text


def test_plain_mlps_keep_their_width_gated_ones_grow_1_5x():
    from tiny_models import family

    plain, gated = family("phi"), family("llama")  # both intermediate 128
    for model in (plain, gated):
        elas_compile.apply(model, elas_compile.ELASConfig(rank=16, ffn_width_multiple=64))
    assert {m.elas_info["new_intermediate"] for _, m in elas_compile.elas_mlps(plain)} == {128}
    assert {m.elas_info["new_intermediate"] for _, m in elas_compile.elas_mlps(gated)} == {192}
    forced = family("phi")
    elas_compile.apply(forced, elas_compile.ELASConfig(rank=16, ffn_width_multiple=64, ffn_width_multiplier=1.5))
    assert {m.elas_info["new_intermediate"] for _, m in elas_compile.elas_mlps(forced)} == {192}


@pytest.mark.parametrize("name,factorized", [
    ("qwen2_moe", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")),
    ("deepseek_v3", ("self_attn.q_b_proj", "self_attn.kv_b_proj", "self_attn.o_proj")),
])
def test_attention_targets_are_found_in_every_layer_and_never_a_router(name, factorized):
    from tiny_models import family

    model = family(name)
    routers = {n for n, m in model.named_modules() if n.endswith((".gate", ".shared_expert_gate"))}
    elas_compile.apply(model, elas_compile.ELASConfig(rank=4, targets=("ffn", "attention")))
    for layer in ("model.layers.0.", "model.layers.1."):
        for proj in factorized:
            assert isinstance(model.get_submodule(layer + proj), elas_compile.LowRankLinear), layer + proj
    assert routers and all(not isinstance(model.get_submodule(n), elas_compile.LowRankLinear) for n in routers)


def test_attention_biases_kept_and_non_reducing_factors_skipped():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model = Qwen2ForCausalLM(Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                         num_key_value_heads=1, vocab_size=VOCAB))  # k/v: 64 -> 16
    q_bias = model.model.layers[0].self_attn.q_proj.bias.detach().clone()
    n_before = sum(p.numel() for p in model.parameters())
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")))
    attn = model.model.layers[0].self_attn
    torch.testing.assert_close(attn.q_proj.bias.detach(), q_bias)
    assert isinstance(attn.k_proj, torch.nn.Linear) and isinstance(attn.v_proj, torch.nn.Linear)
    left = dict(model.elas_summary.left)
    assert "rank-16 factors would hold 1280 parameters, its weight 1024" in left["model.layers.0.self_attn.k_proj"]
    report = elas_compile.explain(model)
    assert n_before - sum(p.numel() for p in model.parameters()) == (
        report.totals["params_before"] - report.totals["params_after"])


def test_the_attention_probe_leaves_the_model_as_it_was():
    class Counting(MODELS["hand_llama"]().__class__):
        def forward(self, input_ids, labels=None):
            self.calls = getattr(self, "calls", 0) + 1
            return super().forward(input_ids, labels)

    from elas_compile.passes.model.attention import find_attention_projections

    model = Counting()
    model.train()
    rng = torch.get_rng_state()
    assert find_attention_projections(model)["blocks.0.wqkv"] == "q/k/v"
    assert torch.equal(torch.get_rng_state(), rng)  # the probe's random draws are undone
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")))
    assert not hasattr(model, "calls") and model.training and all(m.training for m in model.modules())
    assert isinstance(model.blocks[0].wqkv, elas_compile.LowRankLinear)


def test_a_model_the_probe_cannot_run_names_the_way_out():
    model = MODELS["hand_llama"]()
    with pytest.raises(elas_compile.ELASError, match=r"example_inputs"):
        elas_compile.apply(model, elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")),
                           example_inputs=(torch.zeros(1, 8),))  # float ids: the embedding refuses them
    ids = torch.zeros(1, 4, dtype=torch.long)
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, targets=("ffn", "attention")), example_inputs=(ids,))
    assert isinstance(model.blocks[1].wo, elas_compile.LowRankLinear)


def test_olmo_core_style_init_fails_with_the_way_out():
    model = MODELS["hand_llama"]()
    elas_compile.apply(model, CFG)
    with pytest.raises(AttributeError, match=r"'blocks.0.feed_forward' was rewritten.*before apply"):
        model.blocks[0].feed_forward.w1.weight  # what OLMo-core's init_feed_forward reads
