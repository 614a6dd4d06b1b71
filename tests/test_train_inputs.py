"""Bad input stops `elas-compile train` with one line and status 2, before the run folder is
touched; a start that fails later removes what it wrote."""
import os
from pathlib import Path

import pytest

from elas_compile.cli import main
from elas_compile.train.loop import Trainer

from train_helpers import FAST, isolated, one_line_error, small, snapshot, text_file  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread", "isolated")


@pytest.mark.parametrize("args,match", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "0"], "--lr must be in (0, inf]"),
    (["--beta2", "2"], "--beta2 must be in [0, 1), got 2"),
    (["--beta1", "-0.1"], "--beta1 must be in [0, 1)"),
    (["--eval-batches", "0"], "--eval-batches must be >= 1, got 0"),
    (["--stop-at", "0"], "--stop-at must be >= 1, got 0"),
    (["--stop-at", "-3"], "--stop-at must be >= 1, got -3"),
    (["--stop-at", "50"], "--stop-at 50 is past the end of the run"),
    (["--save-every", "-1"], "--save-every must be >= 0, got -1"),
    (["--min-lr-ratio", "5"], "--min-lr-ratio must be in [0, 1], got 5"),
    (["--warmup-steps", "-5"], "--warmup-steps must be >= 0, got -5"),
    (["--warmup-steps", "9"], "--warmup-steps 9 is longer than the run"),
    (["--grad-clip", "inf"], "--grad-clip must be a finite number"),
    (["--val-fraction", "1"], "--val-fraction must be in (0, 1)"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--grad-accum", "3"], "--batch-size 4 must be a multiple of --grad-accum 3"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--rank", "100000"], "rank 100000 is not below min(hidden 128"),
    (["--rank", "1.0"], "rank 128 is not below min(hidden 128"),
    (["--compile-mode", "reduce-overhead", "--device", "cpu"], "needs a CUDA device"),
    (["--no-compile", "--compile-mode", "default"], "--compile-mode needs compilation"),
    (["--data-preset", "python-sources"], "use one data source: --data and --data-preset"),
])
def test_bad_option_leaves_no_folder(tmp_path, text_file, capsys, args, match):
    out = tmp_path / "run"
    rc = main(["train", *small(text_file, "--steps", "8", "--out", str(out), *args)])
    one_line_error(capsys, rc, match)
    assert not out.exists()


@pytest.mark.parametrize("args,match", [
    (["--rank", "100000"], "is not below min("),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--data", "missing.txt"], "data file not found: missing.txt"),
])
def test_bad_option_leaves_an_existing_run_untouched(tmp_path, text_file, capsys, args, match):
    out = tmp_path / "run"
    assert main(["train", *small(text_file, "--steps", "2", "--out", str(out))]) == 0
    before = snapshot(out)
    capsys.readouterr()
    rc = main(["train", *small(text_file, "--steps", "2", "--out", str(out), "--overwrite", *args)])
    one_line_error(capsys, rc, match)
    assert snapshot(out) == before


def test_out_naming_a_file(tmp_path, text_file, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    one_line_error(capsys, main(["train", *small(text_file, "--out", str(f))]), "is a file, not a folder")
    one_line_error(capsys, main(["train", *small(text_file, "--out", str(f / "run"))]), "Not a directory")
    assert f.read_text() == "keep me"


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_out_in_proc(text_file, capsys):
    rc = main(["train", *small(text_file, "--out", "/proc/elas-run")])
    one_line_error(capsys, rc, "cannot create the run folder /proc/elas-run")


def test_read_only_disk(tmp_path, text_file, capsys, monkeypatch):
    """The tests run as any user (root ignores permission bits): the file system's answer is
    simulated."""
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if "ro" in self.parts:
            raise OSError(30, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    rc = main(["train", *small(text_file, "--out", str(tmp_path / "ro" / "run"))])
    one_line_error(capsys, rc, "Read-only file system (choose an --out on a writable disk)")


def test_corpus_too_small_leaves_no_folder(tmp_path, capsys):
    f = tmp_path / "tiny.txt"
    f.write_text("a few words only")
    out = tmp_path / "run"
    one_line_error(capsys, main(["train", "--data", str(f), "--vocab-size", "300", *FAST, "--out", str(out)]),
                   "too small")
    assert not out.exists()


def test_a_start_that_fails_before_its_first_step_removes_its_folder(tmp_path, text_file, monkeypatch):
    def broken(self, stop):
        raise RuntimeError("the first step failed (simulated: a compile error, out of memory)")

    monkeypatch.setattr(Trainer, "train_step", broken)
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError, match="simulated"):
        main(["train", *small(text_file, "--out", str(out))])
    assert not (tmp_path / "a").exists()  # the folders it created, parents included
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("x")
    with pytest.raises(RuntimeError, match="simulated"):
        main(["train", *small(text_file, "--out", str(kept))])
    assert os.listdir(kept) == ["mine.txt"]  # an existing folder keeps what was there, nothing more
