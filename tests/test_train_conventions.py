"""The conventions of pre-training runs: gradient accumulation, log lines, TensorBoard and W&B,
--version, longer runs on resume, the epoch count, CPU threads and the compile mode."""
import json
import sys
import types

import pytest
import torch

from elas_compile.cli import main
from elas_compile.train import runtime as R
from elas_compile.train.errors import TrainError
from elas_compile.train.metrics import read_csv

from train_helpers import isolated, one_line_error, small, text_file  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread", "isolated")


def test_grad_accum_trains_the_same_steps(tmp_path, text_file, capsys):
    """Two micro-batches of 2 give the gradients of the batch of 4: the same losses and norms."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *small(text_file, "--steps", "3", "--out", str(a))]) == 0
    assert main(["train", *small(text_file, "--steps", "3", "--out", str(b), "--grad-accum", "2")]) == 0
    assert "batch 4 x 32 in 2 micro-batches" in capsys.readouterr().out
    ra, rb = read_csv(a / "metrics.csv"), read_csv(b / "metrics.csv")
    for key in ("loss", "grad_norm", "val_loss"):
        got, want = [r[key] for r in rb], [r[key] for r in ra]
        assert [v is None for v in got] == [v is None for v in want], key  # evaluated at the same steps
        assert [v for v in got if v is not None] == pytest.approx([v for v in want if v is not None], rel=1e-5,
                                                                   nan_ok=True), key
    assert [r["tokens"] for r in rb] == [r["tokens"] for r in ra]


def test_log_lines_on_stdout_and_in_train_log(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    assert main(["train", *small(text_file, "--steps", "5", "--log-every", "2", "--eval-every", "5",
                                 "--out", str(out))]) == 0
    stdout = capsys.readouterr().out
    steps = [line.split()[1] for line in stdout.splitlines() if line.startswith("step") and "| loss" in line]
    assert steps == ["2/5", "4/5", "5/5"]  # every 2 steps and the last, off a terminal too
    line = next(ln for ln in stdout.splitlines() if ln.startswith("step 2/5"))
    for field in ("| loss ", "| lr ", " tok/s |", "| mem ", " GB |"):
        assert field in line, line
    log = (out / "train.log").read_text()
    assert "step 4/5 | loss" in log and "val loss" in log and "done" in log and "from scratch" in log


def test_log_lines_are_flushed_as_they_come(tmp_path, text_file, monkeypatch):
    """Off a terminal (a pipe, a batch system's log file) stdout is block-buffered: each line must
    be flushed, or it shows up thousands of steps late."""
    events = []

    class Recorder:
        def write(self, text):
            events.append(("write", text))

        def flush(self):
            events.append(("flush",))

    monkeypatch.setattr(sys, "stdout", Recorder())
    assert main(["train", *small(text_file, "--steps", "3", "--log-every", "1", "--out", str(tmp_path / "r"))]) == 0
    lines = [i for i, e in enumerate(events) if e[0] == "write" and e[1].startswith("step ")]
    assert len(lines) >= 3
    for i in lines:
        nxt = next(e for e in events[i + 1:] if e != ("write", "\n"))
        assert nxt == ("flush",), events[i]


class FakeSummaryWriter:
    scalars = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step = log_dir, purge_step

    def add_scalar(self, tag, value, step):
        FakeSummaryWriter.scalars.append((tag, step))

    def close(self):
        pass


def test_tensorboard(tmp_path, text_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard",
                        types.SimpleNamespace(SummaryWriter=FakeSummaryWriter))
    FakeSummaryWriter.scalars = []
    assert main(["train", *small(text_file, "--steps", "2", "--eval-every", "2", "--tensorboard",
                                 "--out", str(tmp_path / "run"))]) == 0
    assert ("train/loss", 1) in FakeSummaryWriter.scalars and ("val/ppl", 2) in FakeSummaryWriter.scalars


def test_tensorboard_without_the_package(tmp_path, text_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    rc = main(["train", *small(text_file, "--tensorboard", "--out", str(tmp_path / "run"))])
    one_line_error(capsys, rc, "pip install 'elas-compile[tensorboard]'")
    assert not (tmp_path / "run").exists()


def fake_wandb(calls):
    class Run:
        def log(self, scalars, step):
            calls.append(("log", step, sorted(scalars)))

        def finish(self):
            calls.append(("finish",))

    def init(**kw):
        calls.append(("init", kw["id"], kw["resume"], kw["project"]))
        return Run()

    return types.SimpleNamespace(init=init)


def test_wandb_continues_its_run_on_resume(tmp_path, text_file, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    out = tmp_path / "run"
    assert main(["train", *small(text_file, "--steps", "3", "--stop-at", "2", "--wandb", "--out", str(out))]) == 0
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    inits = [c for c in calls if c[0] == "init"]
    assert len(inits) == 2 and inits[0][1] == inits[1][1] and inits[0][2:] == ("allow", "elas-compile")
    assert [c[1] for c in calls if c[0] == "log"] == [1, 2, 3] and calls[-1] == ("finish",)


def test_wandb_that_cannot_start_is_one_line(tmp_path, text_file, capsys, monkeypatch):
    def init(**kw):
        raise RuntimeError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    rc = main(["train", *small(text_file, "--wandb", "--out", str(tmp_path / "run"))])
    one_line_error(capsys, rc, "--wandb: cannot start a W&B run (api_key not configured")
    assert not (tmp_path / "run").exists()


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("elas-compile 0.1.0 (torch ")


def test_steps_grow_on_resume(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    assert main(["train", *small(text_file, "--steps", "3", "--out", str(out))]) == 0
    assert main(["train", "--resume", "--out", str(out), "--steps", "5", "--no-progress"]) == 0
    assert "extending the run from 3 to 5 steps" in capsys.readouterr().out
    assert [r["step"] for r in read_csv(out / "metrics.csv")] == [1, 2, 3, 4, 5]
    assert json.loads((out / "run.json").read_text())["options"]["steps"] == 5
    one_line_error(capsys, main(["train", "--resume", "--out", str(out), "--steps", "4"]),
                   "--steps 4 is below the checkpoint's step 5")


def test_a_run_that_repeats_its_data_says_so(tmp_path, text_file, capsys):
    assert main(["train", *small(text_file, "--steps", "5000", "--stop-at", "1", "--out", str(tmp_path / "r"))]) == 0
    out = capsys.readouterr().out
    assert "steps make" in out and "epochs" in out
    assert "warning: this run repeats its training data" in out


@pytest.mark.parametrize("cores,load,threads", [(2, 0.2, 2), (2, 1.1, 1), (2, 6.0, 1), (16, 0.0, 4), (8, 5.4, 3)])
def test_default_threads(monkeypatch, cores, load, threads):
    monkeypatch.setattr(R.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(R.os, "getloadavg", lambda: (load, load, load))
    assert R.default_threads() == threads


def test_omp_num_threads_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    n = torch.get_num_threads()
    assert R.set_threads(None) == n  # left as the environment chose


@pytest.mark.parametrize("mode,compile,device,parallel,expect", [
    (None, True, "cuda", "none", "reduce-overhead"),  # the mode ELAS needs on a GPU
    (None, True, "cuda", "fsdp", None),
    (None, False, "cuda", "none", None),
    (None, False, "cpu", "none", None),
    ("default", True, "cuda", "none", None),
    ("max-autotune-no-cudagraphs", True, "cuda", "ddp", "max-autotune-no-cudagraphs"),
    ("reduce-overhead", True, "cpu", "none", "needs a CUDA device"),
    ("reduce-overhead", True, "cuda", "fsdp", "cannot capture FSDP2"),
])
def test_compile_mode(mode, compile, device, parallel, expect):
    if expect is not None and " " in expect:
        with pytest.raises(TrainError, match=expect):
            R.resolve_compile_mode(mode, compile, torch.device(device), parallel)
    else:
        assert R.resolve_compile_mode(mode, compile, torch.device(device), parallel) == expect


def test_dense_warm_up_2_4_then_dense_final_phase(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    rc = main(["train", *small(text_file, "--steps", "6", "--dense-warmup-steps", "1", "--dense-final-steps", "2",
                                "--out", str(out))])
    assert rc == 0, capsys.readouterr().err
    assert [r["sparse_active"] for r in read_csv(out / "metrics.csv")] == [False, True, True, True, False, False]
    rc = main(["train", *small(text_file, "--steps", "6", "--dense-final-steps", "7", "--out", str(tmp_path / "x"))])
    one_line_error(capsys, rc, "--dense-final-steps 7 is longer than the run")
