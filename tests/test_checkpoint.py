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


# --- save_pretrained / from_pretrained ----------------------------------------------------------

def _logits(model):
    with torch.no_grad():
        return model.eval()(input_ids=_ids()).logits


def test_save_and_from_pretrained_give_identical_logits(tmp_path):
    saved = _sparse_trained()
    elas_compile.save_pretrained(saved, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "elas_config.json", "model.safetensors"]
    loaded = elas_compile.from_pretrained(tmp_path)
    assert _modes(loaded) == {"masked"} and not loaded.training
    assert loaded.elas_config == saved.elas_config
    assert (_logits(loaded) - _logits(saved)).abs().max().item() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tied_embeddings_rotary_tables_and_dtype_survive(tmp_path, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tiny_models import _common

    # built as transformers builds a bf16 model: weights in dtype, rotary tables in float32
    saved = LlamaForCausalLM._from_config(LlamaConfig(**_common(tie_word_embeddings=True)), dtype=dtype)
    elas_compile.apply(saved, CFG)
    elas_compile.save_pretrained(saved, tmp_path)
    loaded = elas_compile.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight and loaded.lm_head.weight.dtype == dtype
    assert torch.equal(loaded.model.rotary_emb.inv_freq, saved.model.rotary_emb.inv_freq)
    assert (_logits(loaded) - _logits(saved)).abs().max().item() == 0


def test_transformers_own_from_pretrained_refuses_an_elas_folder(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    elas_compile.save_pretrained(_sparse_trained(), tmp_path)
    for load in (LlamaForCausalLM.from_pretrained, AutoModelForCausalLM.from_pretrained):
        with pytest.raises(KeyError, match=r"an ELAS model: load it with elas_compile\.from_pretrained"):
            load(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)  # still readable, and says what it is
    assert config.architectures == ["ELASLlamaForCausalLM"] and config.elas["original"]["hidden_act"] == "silu"


def test_from_pretrained_takes_elas_config_overrides(tmp_path):
    elas_compile.save_pretrained(_sparse_trained(), tmp_path)
    loaded = elas_compile.from_pretrained(tmp_path, kernels="reference")
    assert {m.kernels for _, m in elas_compile.elas_mlps(loaded)} == {"reference"}
    with pytest.raises(TypeError, match="colour"):
        elas_compile.from_pretrained(tmp_path, colour="blue")


def test_bad_inputs_are_refused_with_the_way_out(tmp_path):
    with pytest.raises(elas_compile.ELASError, match="holds no model.safetensors"):
        elas_compile.from_pretrained(tmp_path)
    with pytest.raises(elas_compile.ELASError, match="without ELAS"):
        elas_compile.save_pretrained(llama(), tmp_path)
    elas_compile.save_pretrained(_sparse_trained(), tmp_path)
    (tmp_path / "elas_config.json").unlink()
    with pytest.raises(elas_compile.ELASError, match="elas_config.json is missing"):
        elas_compile.from_pretrained(tmp_path)


def test_a_train_run_folder_loads_with_or_without_its_configs(tmp_path, tmp_path_factory, monkeypatch):
    from safetensors.torch import load_file

    from conftest import write_docs_text
    from elas_compile.checkpoint import write_configs
    from elas_compile.cli import main

    monkeypatch.setenv("ELAS_COMPILE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--data", write_docs_text(tmp_path_factory, 60_000), "--vocab-size", "300", "--batch-size", "2",
                 "--seq-len", "32", "--steps", "2", "--dense-warmup-steps", "1", "--no-progress", "--threads", "1",
                 "--out", str(run)]) == 0
    from_run_json = elas_compile.from_pretrained(run)  # checkpoint/ without config.json: rebuilt from run.json
    state = from_run_json.state_dict()
    assert all(torch.equal(state[k], v) for k, v in load_file(str(run / "checkpoint" / "model.safetensors")).items())
    assert _modes(from_run_json) == {"masked"}
    write_configs(run / "checkpoint", from_run_json)  # what the training code writes beside its weights
    from_configs = elas_compile.from_pretrained(run)
    assert (_logits(from_configs) - _logits(from_run_json)).abs().max().item() == 0


def test_a_config_without_an_activation_field_is_saved_with_a_warning():
    from elas_compile.checkpoint import _refusing_config
    from elas_compile.diagnostics import reset_warnings

    reset_warnings()
    with pytest.warns(UserWarning, match="will not refuse"):
        doc = _refusing_config({"architectures": ["MyLM"], "model_type": "my"})
    assert doc["architectures"] == ["ELASMyLM"] and doc["elas"]["original"] == {"architectures": ["MyLM"]}


def _mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    return MixtralForCausalLM(MixtralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                                            num_local_experts=4, num_experts_per_tok=2))


def test_routed_experts_carry_their_mode_through_save_and_load(tmp_path):
    saved = elas_compile.apply(_mixtral(), CFG)
    elas_compile.SparsitySchedule(saved).step()
    experts = [m for _, m in elas_compile.elas_mlps(saved) if "experts" in m.elas_info["kind"]]
    assert experts and _modes(saved) == {"masked"}
    elas_compile.save_pretrained(saved, tmp_path)
    loaded = elas_compile.from_pretrained(tmp_path)
    assert _modes(loaded) == {"masked"}
    assert (_logits(loaded) - _logits(saved)).abs().max().item() == 0
