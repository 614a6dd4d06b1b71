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
