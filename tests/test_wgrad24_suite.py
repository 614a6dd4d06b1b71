"""``python -m benchmarks wgrad24``: a smoke run writes its files, and the measurement of one MLP
is right where the answer is known."""
import torch

from bench_helpers import suite_outputs
from benchmarks.__main__ import main
from benchmarks.suites.wgrad24 import measure_steps
from benchmarks.wgrad24_probe import mlp_stats
from elas_compile.lowrank import LowRankLinear


def test_measurement_points_span_the_sparse_phase():
    assert measure_steps(400, 100, 5) == [101, 176, 251, 325, 400]
    assert measure_steps(10, 2, 1) == [3]


def _mlp(d=16, f=32, r=8):
    torch.manual_seed(0)
    mlp = torch.nn.Module()
    mlp.up_proj, mlp.down_proj = LowRankLinear(d, f, r), LowRankLinear(f, d, r)
    return mlp


def test_exact_groups_give_no_error_and_a_dense_fraction_of_one_none_either():
    mlp = _mlp()
    x = torch.randn(32, 16)
    x.view(-1, 4, 16)[:, 2:] = 0  # at most 2 nonzero tokens per group of 4
    (row,) = mlp_stats(x, torch.randn(32, 16), mlp, [0.0])
    assert row["exact_S"] == row["exact_dy"] == 1.0 and row["err_dVdown"] < 1e-6 and row["err_dUup"] < 1e-6
    rows = mlp_stats(torch.randn(32, 16), torch.randn(32, 16), mlp, [0.0, 1.0])
    assert rows[0]["exact_S"] < 1 and rows[0]["err_dVdown"] > 1e-3 and rows[0]["err_dUup"] > 1e-3
    assert rows[1]["err_dVdown"] < 1e-6 and rows[1]["err_dUup"] < 1e-6


def test_a_cpu_smoke_run_writes_its_files(tmp_path):
    assert main(["wgrad24", "--steps", "3", "--warmup", "1", "--points", "2", "--batch-size", "2", "--seq-len", "32",
                 "--dense-fractions", "0,0.1", "--root", str(tmp_path)]) == 0
    _, rows, meta, report = suite_outputs(tmp_path, "wgrad24")
    assert {r["step"] for r in rows} == {"2", "3"} and {r["dense_fraction"] for r in rows} == {"0", "0.1"}
    assert {r["mlp"] for r in rows} == {"model.layers.0.mlp", "model.layers.1.mlp", "mean", "worst"}
    for r in rows:
        assert 0 <= float(r["exact_S"]) <= 1 and 0 <= float(r["err_dVdown"]) < 2 and 0 <= float(r["err_dUup"]) < 2
    assert meta["options"]["dense_fractions"] == [0.0, 0.1] and "masked-tokens24" in report
