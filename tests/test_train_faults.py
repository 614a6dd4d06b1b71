"""Faults around a run folder: a second process, a damaged or foreign checkpoint, a full or
read-only disk, SIGTERM. Each ends with one line (or a clean stop) and a resumable folder."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from elas_compile.cli import main
from elas_compile.train.metrics import read_csv
from elas_compile.train.rundir import RunFolder

from train_helpers import isolated, one_line_error, small, snapshot, text_file  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread", "isolated")


def run(text_file, out, *extra):
    return main(["train", *small(text_file, "--steps", "4", "--eval-every", "2", "--out", str(out), *extra)])


def resume(out, *extra):
    return main(["train", "--resume", "--out", str(out), "--no-progress", *extra])


@pytest.fixture
def stopped(tmp_path, text_file, capsys):
    """A run stopped at step 2 (checkpoint of step 2), ready to resume."""
    out = tmp_path / "run"
    assert run(text_file, out, "--stop-at", "2") == 0
    capsys.readouterr()
    return out


def test_a_second_process_cannot_resume_a_live_run(stopped, capsys):
    live = RunFolder(stopped)
    live.open(resume=True, overwrite=False)  # what the first process holds while it trains
    try:
        before = snapshot(stopped)
        one_line_error(capsys, resume(stopped), f"is in use by another `elas-compile train` (pid {os.getpid()})")
        assert snapshot(stopped) == before
    finally:
        live.close()
    assert resume(stopped) == 0  # the lock goes with its process
    assert [r["step"] for r in read_csv(stopped / "metrics.csv")] == [1, 2, 3, 4]


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_shard_is_caught(stopped, capsys):
    _flip_middle_byte(stopped / "checkpoint" / "dcp" / "__0_0.distcp")
    one_line_error(capsys, resume(stopped), "is corrupt: dcp/__0_0.distcp does not match the sha256")


def test_a_missing_metadata_file_is_not_taken_for_the_old_format(stopped, capsys):
    (stopped / "checkpoint" / "dcp" / ".metadata").unlink()
    one_line_error(capsys, resume(stopped), "is incomplete: dcp/.metadata is missing")


def test_a_checkpoint_of_another_model(tmp_path, text_file, stopped, capsys):
    other = tmp_path / "other"
    assert run(text_file, other, "--stop-at", "2", "--rank", "16") == 0
    capsys.readouterr()
    shutil.rmtree(stopped / "checkpoint")
    shutil.copytree(other / "checkpoint", stopped / "checkpoint")
    one_line_error(capsys, resume(stopped), "does not match the model")


def _fail_nth(n: int, exc: OSError):
    calls = []

    def fail(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return fail.real(*a, **k)

    return fail


@pytest.mark.parametrize("where", ["dcp", "safetensors"])
def test_disk_full_during_a_save(tmp_path, text_file, capsys, monkeypatch, where):
    """The second save fails: one line, no checkpoint.tmp left, the first checkpoint intact."""
    import torch.distributed.checkpoint.filesystem as fs

    import elas_compile.train.dcp as dcp_mod

    full = OSError(errno.ENOSPC, "No space left on device")
    target = (fs._FileSystemWriter, "write_data") if where == "dcp" else (dcp_mod, "save_file")
    fail = _fail_nth(2, full)
    fail.real = getattr(*target)
    monkeypatch.setattr(*target, fail)
    out = tmp_path / "run"
    one_line_error(capsys, run(text_file, out, "--save-every", "1"), "No space left on device")
    assert not (out / "checkpoint.tmp").exists()
    assert json.loads((out / "checkpoint" / "state.json").read_text())["meta"]["step"] == 1
    monkeypatch.undo()
    assert resume(out) == 0  # and the run goes on from there


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through Linux /proc")
def test_checkpoint_reaches_the_disk_before_it_is_published(tmp_path, text_file, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "run"
    assert run(text_file, out, "--stop-at", "1") == 0
    publish = next(i for i, e in enumerate(events) if e[0] == "replace" and e[1].endswith("checkpoint.tmp"))
    synced = {e[1] for e in events[:publish] if e[0] == "fsync"}
    tmp = out / "checkpoint.tmp"
    for f in ["dcp/__0_0.distcp", "dcp/.metadata", "model.safetensors", "state.safetensors", "state.json", "dcp", "."]:
        assert str((tmp / f).resolve()) in synced, f
    assert ("fsync", str(out.resolve())) in events[publish:]  # the rename itself


def test_read_only_folder_at_save(stopped, capsys, monkeypatch):
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if self.name == "checkpoint.tmp":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    one_line_error(capsys, resume(stopped, "--save-every", "1"), "Read-only file system")


def test_sigterm_saves_and_exits_cleanly(tmp_path, text_file):
    """SIGTERM (what SLURM and Kubernetes send) mid-run: the step finishes, a checkpoint of the
    last step is written (no step lost), status 143; the resumed run continues exactly."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "elas_compile", "train", *small(text_file, "--steps", "400", "--out", str(out),
                                                                  "--log-every", "1", "--save-every", "0",
                                                                  "--threads", "1")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait until it trains
            if line.startswith("step 1/400"):
                break
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM at step" in stdout and "Traceback" not in stderr
    rows = read_csv(out / "metrics.csv")
    stop = rows[-1]["step"]
    assert json.loads((out / "checkpoint" / "state.json").read_text())["meta"]["step"] == stop < 400
    assert resume(out, "--stop-at", str(stop + 2)) == 0
    straight = tmp_path / "straight"
    assert main(["train", *small(text_file, "--steps", "400", "--out", str(straight), "--stop-at", str(stop + 2),
                                 "--save-every", "0")]) == 0
    assert [r["loss"] for r in read_csv(out / "metrics.csv")] == [r["loss"] for r in read_csv(straight / "metrics.csv")]


def test_stop_signals_first_requests_second_interrupts():
    from elas_compile.train.signals import StopSignals

    with StopSignals() as s:
        os.kill(os.getpid(), signal.SIGINT)
        assert s.requested and s.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
