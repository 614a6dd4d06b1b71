"""ELASTrainerCallback: transformers' Trainer steps the sparsity schedule, writes checkpoints that
elas_compile.from_pretrained loads (and transformers refuses), and resumes the schedule's count."""
import pytest
import torch

import elas_compile
from tiny_models import VOCAB, llama

pytest.importorskip("accelerate")  # transformers' Trainer needs it


def _trainer(out, model, schedule, steps=4):
    from transformers import Trainer, TrainingArguments

    from elas_compile.integrations.hf import ELASTrainerCallback

    ids = torch.randint(3, VOCAB, (16, 16), generator=torch.Generator().manual_seed(0))
    args = TrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=2, save_steps=2,
                             report_to=[], use_cpu=True, disable_tqdm=True, logging_steps=100, seed=0)
    data = [{"input_ids": row, "labels": row} for row in ids]
    return Trainer(model=model, args=args, train_dataset=data, callbacks=[ELASTrainerCallback(schedule)])


def _elas():
    model = elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, dense_warmup_steps=3))
    return model, elas_compile.SparsitySchedule(model)


def _modes(model):
    return {m.sparsity_mode for _, m in elas_compile.elas_mlps(model)}


def test_trainer_steps_the_schedule_and_writes_loadable_checkpoints(tmp_path):
    from transformers import LlamaForCausalLM

    model, schedule = _elas()
    _trainer(tmp_path, model, schedule).train()
    assert schedule.steps == 4 and _modes(model) == {"masked"}
    early, late = tmp_path / "checkpoint-2", tmp_path / "checkpoint-4"
    assert _modes(elas_compile.from_pretrained(early)) == {"dense"}  # saved inside the warm-up
    loaded = elas_compile.from_pretrained(late)
    assert _modes(loaded) == {"masked"}
    ids = torch.randint(3, VOCAB, (1, 8))
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model.eval()(input_ids=ids).logits)
    with pytest.raises(KeyError, match="elas_compile.from_pretrained"):
        LlamaForCausalLM.from_pretrained(late)

    model, schedule = _elas()  # a resumed Trainer continues the schedule at its global step
    _trainer(tmp_path, model, schedule, steps=4).train(resume_from_checkpoint=str(early))
    assert schedule.steps == 4 and _modes(model) == {"masked"}


def test_the_callback_takes_a_schedule():
    from elas_compile.integrations.hf import ELASTrainerCallback

    with pytest.raises(TypeError, match="SparsitySchedule"):
        ELASTrainerCallback(llama())
