"""`elas-compile train` / `plot` end to end, baselines, and bad input (one line, exit 2)."""
import json
import subprocess
import sys

import pytest

from elas_compile.cli import main
from elas_compile.train.metrics import read_csv

from train_helpers import FAST, isolated, one_line_error, small, text_file  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread", "isolated")


def test_default_tiny_run_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "6", "--eval-every", "3", "--batch-size", "4", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "tok/s" in captured.out and captured.err == ""  # log lines; no progress bar off a terminal
    assert "llama-tiny-elas-masked" in captured.out and "done" in captured.out
    assert "step 6/6 | loss" in (out / "train.log").read_text()
    rows = read_csv(out / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert [r["val_loss"] is not None for r in rows] == [False, False, True, False, False, True]
    assert all(r["sparse_active"] for r in rows)  # default dense warm-up: steps/10 = 0
    assert rows[-1]["loss"] < rows[0]["loss"] and rows[0]["tokens_per_s"] > 0
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert summary["steps"] == 6 and summary["final_val_ppl"] > 1 and summary["finished"]
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "tokenizer.json").is_file() and "mlp/gated" in (out / "explain.txt").read_text()
    from safetensors import safe_open

    with safe_open(str(out / "checkpoint" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("mlp.up_proj.u" in k for k in keys) and not any("gate_proj" in k for k in keys)


@pytest.mark.parametrize("variant,expect_keys,absent_keys,sparse", [
    (["--baseline", "full"], ["mlp.gate_proj.weight"], ["up_proj.u"], False),
    (["--baseline", "lowrank"], ["mlp.up_proj.u"], ["gate_proj"], False),
    (["--backward", "ste", "--attention", "--rank", "16", "--dense-warmup-steps", "2"],
     ["self_attn.q_proj.u", "mlp.down_proj.v"], ["gate_proj"], True),
])
def test_variants(tmp_path, text_file, variant, expect_keys, absent_keys, sparse):
    out = tmp_path / "run"
    assert main(["train", *small(text_file, "--steps", "3", "--out", str(out), *variant)]) == 0
    from safetensors import safe_open

    with safe_open(str(out / "checkpoint" / "model.safetensors"), "pt") as f:
        keys = " ".join(f.keys())
    assert all(k in keys for k in expect_keys) and not any(k in keys for k in absent_keys)
    rows = read_csv(out / "metrics.csv")
    assert [r["sparse_active"] for r in rows] == ([False, False, True] if sparse else [False] * 3)


def test_compare_overlay_and_plot_command(tmp_path, text_file, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *small(text_file, "--steps", "2", "--out", str(a), "--baseline", "full")]) == 0
    assert main(["train", *small(text_file, "--steps", "2", "--out", str(b), "--compare", str(a))]) == 0
    assert (b / "loss.png").stat().st_size > 1000
    png = tmp_path / "cmp.png"
    assert main(["plot", str(a), str(b), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("case,match", [
    ("missing", "data file not found"),
    ("empty", "is empty"),
    ("tiny", "too small"),
    ("preset", "unknown preset 'llama-7b'"),
    ("relu-gate", "the ELAS rewrite cannot handle this model"),
    ("bad-json", "not valid JSON"),
    ("option", "unrecognized arguments: --nope"),
    ("resume", "nothing to resume"),
    ("rank", "--rank must be an int"),
    ("full-cola", "drop --attention/--rank/--lowrank-form"),
])
def test_bad_input(tmp_path, text_file, capsys, case, match):
    f = tmp_path / "f.txt"
    cfg = tmp_path / "cfg.json"
    out = ["--out", str(tmp_path / "run")]
    args = {
        "missing": ["--data", str(tmp_path / "nope.txt")],
        "empty": ["--data", str(f)],
        "tiny": ["--data", str(f), "--vocab-size", "300"],
        "preset": ["--preset", "llama-7b"],
        "relu-gate": ["--data", text_file, "--vocab-size", "300", "--model-config", str(cfg)],
        "bad-json": ["--model-config", str(cfg)],
        "option": ["--nope"],
        "resume": ["--resume"],
        "rank": ["--rank", "big"],
        "full-cola": ["--baseline", "full", "--lowrank-form", "cola"],
    }[case]
    f.write_text("" if case == "empty" else "a few words only")
    cfg.write_text("{not json" if case == "bad-json" else json.dumps(dict(
        model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, hidden_act="relu")))
    one_line_error(capsys, main(["train", *args, *FAST, "--steps", "1", *out]), match)


def test_existing_run_needs_resume_or_overwrite(tmp_path, text_file, capsys):
    out = ["--out", str(tmp_path / "run")]
    assert main(["train", *small(text_file, "--steps", "1", *out)]) == 0
    capsys.readouterr()
    one_line_error(capsys, main(["train", *small(text_file, "--steps", "1", *out)]), "already holds a run")
    assert main(["train", *small(text_file, "--steps", "2", "--overwrite", *out)]) == 0
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == 2


def test_plot_of_a_folder_without_metrics(tmp_path, capsys):
    one_line_error(capsys, main(["plot", str(tmp_path)]), "no metrics.csv")


def test_python_dash_m_exit_status(tmp_path):
    p = subprocess.run([sys.executable, "-m", "elas_compile", "train", "--data", str(tmp_path / "x.txt")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "elas-compile train: error: data file not found" in p.stderr


def test_a_run_in_the_default_folder_does_not_hide_bad_input(tmp_path):
    """The README's two commands in order: `elas-compile train` leaves runs/llama-tiny-elas-masked
    behind, then the tests run in the same folder; bad input must still be named first."""
    run = tmp_path / "runs" / "llama-tiny-elas-masked"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("step,loss\n1,7.0\n")
    p = subprocess.run([sys.executable, "-m", "elas_compile", "train", "--data", "x.txt"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "data file not found: x.txt" in p.stderr, p.stderr


def test_model_config_folder(tmp_path, text_file):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=2).save_pretrained(str(tmp_path / "cfg"))
    out = tmp_path / "run"
    assert main(["train", *small(text_file, "--steps", "2", "--model-config", str(tmp_path / "cfg"),
                                 "--out", str(out))]) == 0
    assert "model.layers.0.mlp" in (out / "explain.txt").read_text()
    assert json.loads((out / "run.json").read_text())["options"]["name"] == "cfg-elas-masked"


def test_bf16_autocast_elas(tmp_path, text_file):
    # the GPU default (bf16 autocast), exercised on the CPU
    assert main(["train", *small(text_file, "--steps", "2", "--precision", "bf16",
                                 "--out", str(tmp_path / "run"))]) == 0


def test_lowrank_form_cola(tmp_path, text_file):
    """--lowrank-form cola: SiLU between the factors (the MLP's graph shows it), named in the run."""
    assert main(["train", *small(text_file, "--steps", "2", "--out", str(tmp_path / "run"),
                                 "--lowrank-form", "cola")]) == 0
    code = (tmp_path / "run" / "explain.txt").read_text().split("graph of the first ELAS MLP")[1]
    assert code.count("functional.silu(") == 2  # one per factorized linear (up and down)
    options = json.loads((tmp_path / "run" / "run.json").read_text())["options"]
    assert options["lowrank_form"] == "cola" and options["name"].endswith("-elas-masked-cola")
