"""The sparsity state travels with the weights: load_state_dict restores the 2:4 mode exactly."""
import pytest
import torch
from safetensors.torch import load_file, save_file

import elas_compile
from tiny_models import VOCAB, llama

CFG = elas_compile.ELASConfig(rank=16, dense_warmup_steps=1)


def _ids():
    return torch.randint(3, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))


def _modes(model):
    return {m.sparsity_mode for _, m in elas_compile.elas_mlps(model)}


def _sparse_trained():
    model = elas_compile.apply(llama(), CFG)
    elas_compile.SparsitySchedule(model).step()  # past the warm-up: 2:4 ("masked")
    assert _modes(model) == {"masked"}
    return model


@torch.no_grad()
def test_load_state_dict_restores_the_sparsity_mode_exactly():
    saved = _sparse_trained()
    fresh = elas_compile.apply(llama(), CFG)
    assert _modes(fresh) == {"dense"}
    fresh.load_state_dict(saved.state_dict())
    assert _modes(fresh) == {"masked"}
    assert (fresh(input_ids=_ids()).logits - saved(input_ids=_ids()).logits).abs().max().item() == 0
    # what the mode is worth: the same weights run dense give other logits
    for _, m in elas_compile.elas_mlps(fresh):
        m.sparsity_mode = "dense"
    assert (fresh(input_ids=_ids()).logits - saved(input_ids=_ids()).logits).abs().max().item() > 1e-4


def test_sparsity_state_round_trips_through_safetensors(tmp_path):
    saved = _sparse_trained()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous().clone() for k, v in saved.state_dict().items()}, str(path))
    fresh = elas_compile.apply(llama(), CFG)
    fresh.load_state_dict(load_file(str(path)))
    assert _modes(fresh) == {"masked"}
    assert {m.elas_backward for _, m in elas_compile.elas_mlps(fresh)} == {"masked"}


def test_backward_mode_travels_too():
    saved = elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, backward="ste", dense_warmup_steps=1))
    fresh = elas_compile.apply(llama(), CFG)
    fresh.load_state_dict(saved.state_dict())
    schedule = elas_compile.SparsitySchedule(fresh)
    schedule.step()
    assert _modes(fresh) == {"ste"}


def test_a_schedule_made_after_loading_a_sparse_checkpoint_keeps_it_sparse():
    fresh = elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, dense_warmup_steps=100))
    fresh.load_state_dict(_sparse_trained().state_dict())
    schedule = elas_compile.SparsitySchedule(fresh)
    assert schedule.sparse_active and schedule.steps == 100 and _modes(fresh) == {"masked"}


def test_a_dense_model_refuses_a_sparse_checkpoint():
    dense = elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, sparsity=False))
    with pytest.raises(elas_compile.ELASError, match=r"model\.layers\.0\.mlp.*sparsity=False"):
        dense.load_state_dict(_sparse_trained().state_dict())


def test_a_state_of_another_format_is_refused():
    model = elas_compile.apply(llama(), CFG)
    state = model.state_dict()
    state["model.layers.0.mlp._extra_state"] = torch.tensor([99, 1, 1])
    with pytest.raises(elas_compile.ELASError, match="not of format 1"):
        model.load_state_dict(state)


def test_checkpoints_with_the_old_factor_names_still_load():
    saved = _sparse_trained()
    old = {(k[:-1] + "weight_" + k[-1]) if k.endswith((".u", ".v")) else k: v for k, v in saved.state_dict().items()}
    assert any(k.endswith(".weight_v") for k in old)
    fresh = elas_compile.apply(llama(), CFG)
    fresh.load_state_dict(old)  # strict: nothing missing, nothing unexpected
    mlp, ref = fresh.model.layers[1].mlp, saved.model.layers[1].mlp
    assert torch.equal(mlp.down_proj.v, ref.down_proj.v) and torch.equal(mlp.up_proj.u, ref.up_proj.u)
