"""`torchrun --nproc-per-node 2 -m elas_compile train --parallel ddp|fsdp` on CPU (gloo):

the losses, gradient norms and validation losses equal those of one process on the same global
batch; a sharded FSDP checkpoint resumes in one process (no process group) and continues the
same trajectory; the launch rules (global batch split, --parallel none under torchrun) hold.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elas_compile.cli import main
from elas_compile.train.metrics import read_csv

from conftest import write_docs_text

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240
STEPS = 4


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("elas_cache"))


@pytest.fixture(autouse=True)
def _cache(cache, monkeypatch):
    monkeypatch.setenv("ELAS_COMPILE_CACHE", cache)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return write_docs_text(tmp_path_factory, 60_000)


def args(text_file, out, *extra):
    # global batch 4 (2 per rank), 2:4 from step 2 on, weight decay and clipping on
    return ["train", "--data", text_file, "--vocab-size", "300", "--batch-size", "4", "--seq-len", "32",
            "--steps", str(STEPS), "--eval-every", "2", "--save-every", "0", "--dense-warmup-steps", "1",
            "--weight-decay", "0.1", "--no-progress", "--threads", "1", "--out", str(out), *extra]


def torchrun(argv, cache, nproc=2):
    env = {**os.environ, "ELAS_COMPILE_CACHE": cache, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "elas_compile", *argv]
    try:
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"torchrun did not finish in {TIMEOUT_S} s:\n{(e.stderr or b'')[-3000:]}")


def check(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def single(tmp_path_factory, text_file, cache):
    """The one-process reference run (global batch 4)."""
    out = tmp_path_factory.mktemp("single") / "run"
    old = os.environ.get("ELAS_COMPILE_CACHE")
    os.environ["ELAS_COMPILE_CACHE"] = cache
    try:
        assert main(args(text_file, out)) == 0
    finally:
        if old is None:
            os.environ.pop("ELAS_COMPILE_CACHE")
        else:
            os.environ["ELAS_COMPILE_CACHE"] = old
    return read_csv(out / "metrics.csv")


def assert_same_trajectory(rows, ref, steps):
    assert [r["step"] for r in rows] == list(steps)
    ref = {r["step"]: r for r in ref}
    for r in rows:
        e = ref[r["step"]]
        assert (r["tokens"], r["sparse_active"], r["lr"]) == (e["tokens"], e["sparse_active"], e["lr"])
        for key in ("loss", "grad_norm", "val_loss"):
            if e[key] is None:
                assert r[key] is None, key
            else:
                assert r[key] == pytest.approx(e[key], rel=1e-5), (key, r["step"])


def test_ddp_matches_one_process(tmp_path, text_file, cache, single):
    """With gradient accumulation too: each rank's 2 sequences in 2 micro-batches of 1."""
    out = tmp_path / "ddp"
    proc = torchrun(args(text_file, out, "--parallel", "ddp", "--grad-accum", "2"), cache)
    check(proc)
    assert "ddp x2" in proc.stdout and proc.stdout.count("done:") == 1  # rank 0 alone logs
    assert_same_trajectory(read_csv(out / "metrics.csv"), single, range(1, STEPS + 1))
    assert [r["sparse_active"] for r in single] == [False] + [True] * (STEPS - 1)


def test_fsdp_matches_one_process_and_resumes_without_process_group(tmp_path, text_file, cache, single):
    out = tmp_path / "fsdp"
    proc = torchrun(args(text_file, out, "--parallel", "fsdp", "--activation-checkpointing", "--stop-at", "2"),
                    cache)
    check(proc)
    assert "fsdp x2" in proc.stdout
    assert_same_trajectory(read_csv(out / "metrics.csv"), single, [1, 2])
    ckpt = out / "checkpoint"
    assert len(list((ckpt / "dcp").glob("*.distcp"))) == 2 and (ckpt / "model.safetensors").is_file()
    # world size 2 -> 1: one process, no process group, no activation checkpointing
    assert main(["train", "--resume", "--out", str(out), "--parallel", "none", "--no-progress"]) == 0
    assert not torch.distributed.is_initialized()
    assert_same_trajectory(read_csv(out / "metrics.csv"), single, range(1, STEPS + 1))


def test_global_batch_must_split_evenly(tmp_path, text_file, cache):
    proc = torchrun(args(text_file, tmp_path / "b", "--parallel", "ddp", "--batch-size", "3"), cache)
    assert proc.returncode != 0 and "must be a multiple of the 2 processes" in proc.stderr
    assert proc.stderr.count("error:") == 1  # rank 0 says it; rank 1 stops quietly


def test_several_processes_need_parallel(monkeypatch):
    from elas_compile.train.distributed import setup_runtime
    from elas_compile.train.errors import TrainError

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun would
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(TrainError, match="--parallel is none"):
        setup_runtime({"parallel": "none"})
