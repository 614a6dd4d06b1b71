"""SparsitySchedule: the dense warm-up, the 2:4 phase and the dense final phase."""
import pytest

import elas_compile


def test_schedule_dense_warm_up_sparse_then_dense_final_phase():
    from tiny_models import MODELS

    model = elas_compile.apply(MODELS["llama"](), elas_compile.ELASConfig(rank=16, dense_warmup_steps=2))
    sched = elas_compile.SparsitySchedule(model, total_steps=10, dense_final=0.3)
    modes = []
    for _ in range(10):
        modes.append(elas_compile.elas_mlps(model)[0][1].sparsity_mode)
        sched.step()
    assert modes == ["dense"] * 2 + ["masked"] * 5 + ["dense"] * 3
    assert elas_compile.SparsitySchedule(model, total_steps=10, dense_final=4).dense_final_steps == 4
    with pytest.raises(ValueError, match="needs total_steps"):
        elas_compile.SparsitySchedule(model, dense_final=3)
    with pytest.raises(ValueError, match="longer than total_steps"):
        elas_compile.SparsitySchedule(model, total_steps=2, dense_final=3)
