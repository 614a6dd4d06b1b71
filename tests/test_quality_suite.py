"""``python -m benchmarks quality``: a CPU smoke run trains every variant through ``elas-compile
train`` with the same seed and batches and reports the perplexities its run folders logged;
--resume, the --budget-s stop, the GPU of each process, the ratios and the targets' verdicts; the
CLI's ``--backward masked-tokens24``."""
import json
import math
import re
import sys
import time

import pytest

from bench_helpers import suite_outputs
from benchmarks import quality_runs
from benchmarks.__main__ import main
from benchmarks.quality_report import verdicts
from benchmarks.suites import quality
from elas_compile.cli import build_parser
from elas_compile.train.metrics import read_csv
from elas_compile.train.options import resolve
from elas_compile.train.variant import Variant

VARIANTS = ["full", "lowrank", "elas-masked", "elas-ste", "elas-masked-tokens24"]


def test_the_training_cli_selects_the_masked_tokens24_backward():
    ns = build_parser().parse_args(["train", "--backward", "masked-tokens24"])
    o = resolve({k: v for k, v in vars(ns).items() if k != "command"})
    assert o["name"] == "llama-tiny-elas-masked-tokens24"
    assert Variant.from_options(o).elas_config().backward == "masked-tokens24"


def _logged_val_ppl(train_log: str) -> list:
    """The validation perplexities of a run's train.log lines ('step 4/8 | val loss 7.4 | val ppl 1708.63')."""
    return [float(m) for m in re.findall(r"\| val ppl ([0-9.]+)", train_log)]


def test_a_cpu_smoke_run_reports_what_the_run_folders_logged(tmp_path, capsys):
    assert main(["quality", "--tokens", "256", "--batch-size", "2", "--seq-len", "32", "--evals", "2",
                 "--concurrent", "2", "--variants", *VARIANTS, "--root", str(tmp_path)]) == 0
    _, rows, meta, report = suite_outputs(tmp_path, "quality")
    assert [r["variant"] for r in rows] == VARIANTS and list(rows[0]) == quality.COLUMNS
    first_losses = {}
    for row in rows:
        assert row["status"] == "ok" and row["note"] == "CPU: not meaningful", row
        assert row["steps"] == "4" and row["tokens"] == "256" and row["ppl_vs_lowrank"] == row["ppl_vs_full"] == ""
        run_dir = tmp_path / row["run_dir"]
        logged = _logged_val_ppl((run_dir / "train.log").read_text())
        assert len(logged) == 2  # --evals 2: steps 2 and 4
        assert math.isclose(float(row["final_val_ppl"]), logged[-1], rel_tol=1e-4)
        assert math.isclose(float(row["best_val_ppl"]), min(logged), rel_tol=1e-4)
        assert math.isclose(math.exp(float(row["final_val_loss"])), float(row["final_val_ppl"]), rel_tol=1e-4)
        options = json.loads((run_dir / "run.json").read_text())["options"]
        assert Variant.from_options(options).name == row["variant"] and options["seed"] == 0
        steps = read_csv(run_dir / "metrics.csv")
        assert steps[-1]["sparse_active"] == row["variant"].startswith("elas-")
        first_losses[row["variant"]] = steps[0]["loss"]
        assert not (run_dir / "checkpoint").exists() and (run_dir.parent / f"{run_dir.name}.out").is_file()
    # one initial model and one batch order: the three ELAS backwards share their first forward ...
    assert first_losses["elas-masked"] == first_losses["elas-ste"] == first_losses["elas-masked-tokens24"]
    # ... and each variant trained what its flags say: five different end points
    assert len({r["final_val_ppl"] for r in rows}) == len(VARIANTS)
    assert meta["options"]["train_args"]["llama-tiny-elas-masked-tokens24"][2:4] == ["--backward", "masked-tokens24"]
    assert "are not judged on a CPU smoke run" in report and "## Ratios" not in report
    assert "quality: started llama-tiny-full" in capsys.readouterr().out


def test_resume_reads_finished_runs_and_continues_stopped_ones(tmp_path):
    from elas_compile import cli

    runs_dir, size = tmp_path / "runs", ["--tokens", "256", "--batch-size", "2", "--seq-len", "32", "--evals", "2"]
    for variant, stop in (("full", []), ("lowrank", ["--stop-at", "2"])):  # as --budget-s leaves them
        args, _ = quality_runs.train_args("llama-tiny", variant, (runs_dir / f"llama-tiny-{variant}").resolve(),
                                          tokens=256, batch=2, seq=32, seed=0, evals=2, eval_batches=8, device="cpu",
                                          data_preset=None, lr=None, threads=None)
        assert cli.main(["train", *args, *stop]) == 0
    assert main(["quality", *size, "--variants", "full", "lowrank", "--resume", str(runs_dir),
                 "--root", str(tmp_path / "root")]) == 0
    _, rows, _, _ = suite_outputs(tmp_path / "root", "quality")
    assert [(r["variant"], r["steps"], r["status"]) for r in rows] == [("full", "4", "ok"), ("lowrank", "4", "ok")]
    assert not (runs_dir / "llama-tiny-full.out").exists()  # read, not run again
    log = (runs_dir / "llama-tiny-lowrank" / "train.log").read_text()
    assert "resuming at step 2" in log and math.isclose(float(rows[1]["final_val_ppl"]), _logged_val_ppl(log)[-1],
                                                        rel_tol=1e-4)


def _runs(tmp_path, n: int) -> list:
    return [quality_runs.Run("llama-tiny", "lowrank", [], tmp_path / f"run{i}", 10) for i in range(n)]


def test_the_budget_stops_the_runs_going_and_skips_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(quality_runs.Run, "command", property(lambda run: [sys.executable, "-c",
                                                                            "import time; time.sleep(60)"]))
    runs = _runs(tmp_path, 3)
    quality_runs.launch(runs, concurrent=2, deadline=time.time() + 2, log=lambda line: None)
    assert [r.stopped for r in runs] == [True, True, False] and runs[2].skipped
    assert runs[0].returncode not in (0, None) and runs[2].returncode is None
    rows = [quality.row_of(r, tmp_path) for r in runs]
    assert rows[0]["status"] == "stopped by --budget-s at step 0/10" and rows[2]["status"].startswith("skipped: ")


def test_each_process_sees_one_gpu_of_those_this_one_sees(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert quality_runs.visible_device(1) == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4, 6")
    assert quality_runs.visible_device(1) == "6"


def _row(variant, ppl, preset="llama-130m", tokens=100_000_000, status="ok"):
    return {"preset": preset, "variant": variant, "final_val_ppl": ppl, "tokens": tokens, "status": status}


def test_ratios_and_the_targets_verdicts():
    rows = [_row("full", 28.0), _row("lowrank", 30.0), _row("elas-masked", 30.2), _row("elas-ste", 30.6),
            _row("elas-masked-tokens24", 30.3), _row("elas-masked", 99.0, preset="llama-60m", tokens=1000),
            _row("lowrank", 98.0, preset="llama-60m", tokens=1000), _row("full", 20.0, status="error (exit 1)")]
    quality.add_ratios(rows)
    assert rows[2]["ppl_vs_lowrank"] == pytest.approx(30.2 / 30) and rows[2]["ppl_vs_full"] == pytest.approx(30.2 / 28)
    assert rows[1]["ppl_vs_lowrank"] == 1.0 and "ppl_vs_full" not in rows[5] and "ppl_vs_lowrank" not in rows[7]
    lines = verdicts(rows)
    by = {(ln.split(": ")[0], *ln.split(": ")[1].split(" ")[:2]): ln for ln in lines if ln.startswith("issue")}
    lowrank, full = "issue 24, ELAS within 1% of dense low rank", "issue 24, at llama-130m ELAS within 5% of full rank"
    assert by[(lowrank, "llama-130m", "elas-masked")].endswith("= 1.0067x (target <= 1.01x): met")
    assert by[(lowrank, "llama-130m", "elas-ste")].endswith(": not met")
    assert by[(full, "llama-130m", "elas-masked")].endswith(": not met")  # 1.079x
    tokens24 = by[("issue 21, masked-tokens24 within 0.5% of masked", "llama-130m", "elas-masked-tokens24")]
    assert ": met (the target is stated for llama-60m)" in tokens24
    small = [ln for ln in lines if "llama-60m elas-masked" in ln]
    assert len(small) == 1
    assert small[0].endswith("(1,000 tokens, below the 100,000,000 the issues ask: indicative only)")
    (favour,) = [ln for ln in lines if "favour" in ln]
    assert favour.startswith("llama-130m: the numbers favour elas-masked ") and "elas-ste 30.600 (+1.32%)" in favour
