"""`--resume` continues a run exactly: N steps straight == k steps + resume + N-k steps."""
import pytest
import torch

from elas_compile.cli import main
from elas_compile.train.checkpoint import decode, encode
from elas_compile.train.metrics import read_csv

from conftest import write_docs_text
from train_helpers import isolated  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread", "isolated")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return write_docs_text(tmp_path_factory, 60_000)


def args(text_file, out, *extra):
    # dense warm-up 3 steps: the sparsity switch happens after the resume point
    return ["train", "--data", text_file, "--vocab-size", "300", "--batch-size", "4", "--seq-len", "32",
            "--steps", "8", "--eval-every", "2", "--save-every", "0", "--dense-warmup-steps", "3",
            "--weight-decay", "0.1", "--no-progress", "--threads", "1", "--out", str(out), *extra]


@pytest.mark.parametrize("extra", [[], ["--backward", "ste", "--attention"]])
def test_resume_is_exact(tmp_path, text_file, extra):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(args(text_file, straight, *extra)) == 0
    assert main(args(text_file, resumed, *extra, "--stop-at", "2")) == 0
    assert [r["step"] for r in read_csv(resumed / "metrics.csv")] == [1, 2]
    assert main(["train", "--resume", "--out", str(resumed), "--no-progress"]) == 0
    a, b = read_csv(straight / "metrics.csv"), read_csv(resumed / "metrics.csv")
    assert [r["step"] for r in b] == list(range(1, 9))
    for key in ("loss", "val_loss", "lr", "grad_norm", "sparse_active", "tokens"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    assert [r["sparse_active"] for r in b] == [False] * 3 + [True] * 5


def test_resume_drops_rows_past_the_checkpoint_and_refuses_changes(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    assert main(args(text_file, out, "--stop-at", "3")) == 0
    with open(out / "metrics.csv", "a") as f:  # a crash after the checkpoint, before the next one
        f.write("4,512,0.001,9.0,1.0,100.0,1,,,1.0\n")
    rc = main(["train", "--resume", "--out", str(out), "--lr", "0.5", "--no-progress"])
    assert rc == 2 and "--lr differs from the run being resumed" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(out), "--no-progress", "--stop-at", "5"]) == 0
    rows = read_csv(out / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and rows[3]["loss"] != 9.0


def test_state_encoding_round_trip():
    state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 2)}},
             "param_groups": [{"betas": (0.9, 0.95), "params": [0], "lr": 1e-3, "foo": None}]}
    tensors = {}
    doc = encode(state, "opt", tensors)
    back = decode(doc, tensors)
    assert back["param_groups"] == state["param_groups"]
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert set(back["state"]) == {0}
