"""`elas-compile bench` on CPU: every variant of llama-tiny as a smoke test (no speed-ups), the
paper presets refused, and a failing variant is an error row."""
import csv

import pytest

from elas_compile.cli import main
from elas_compile.train import bench

from train_helpers import isolated, one_line_error  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread", "isolated")


def test_bench_tiny_on_cpu(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--preset", "llama-tiny", "--steps", "2", "--warmup", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "bench.csv")))
    assert [r["variant"] for r in rows] == list(bench.VARIANTS)
    assert all(r["error"] == "" and float(r["tokens_per_s"]) > 0 for r in rows), rows
    assert all(r["speedup_vs_full"] == "" for r in rows)  # CPU timing differences are noise here
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG" and (out / "bench.json").is_file()
    text = capsys.readouterr().out
    assert "elas-masked-attn" in text and "tok/s" in text and "not a measurement" in text


@pytest.mark.parametrize("args", [[], ["--preset", "llama-tiny", "llama-60m"]])
def test_bench_refuses_paper_presets_on_cpu(tmp_path, capsys, args):
    rc = main(["bench", "--device", "cpu", *args, "--out", str(tmp_path / "b")])
    one_line_error(capsys, rc, "on a CPU would take minutes a step")
    assert not (tmp_path / "b").exists()


def test_a_failing_variant_is_an_error_row(tmp_path, capsys, monkeypatch):
    real = bench.bench_one

    def flaky(preset, variant, *a, **k):
        if variant.name == "elas-ste":
            raise RuntimeError("CUDA out of memory (simulated)\nmore lines")
        return real(preset, variant, *a, **k)

    monkeypatch.setattr(bench, "bench_one", flaky)
    out = tmp_path / "bench"
    rc = main(["bench", "--preset", "llama-tiny", "--steps", "1", "--warmup", "0", "--batch-size", "2",
               "--variants", "full", "elas-ste", "elas-masked", "--out", str(out)])
    assert rc == 0
    rows = {r["variant"]: r for r in csv.DictReader(open(out / "bench.csv"))}
    assert rows["elas-ste"]["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert rows["elas-masked"]["error"] == "" and float(rows["elas-masked"]["tokens_per_s"]) > 0
    assert "ERROR" in capsys.readouterr().out


def test_bench_bad_variant(capsys):
    assert main(["bench", "--variants", "turbo"]) == 2
    assert "unknown variant(s) turbo" in capsys.readouterr().err


def test_bench_compile_mode_checks(capsys):
    assert main(["bench", "--preset", "llama-tiny", "--compile-mode", "fastest"]) == 2
    assert "--compile-mode" in capsys.readouterr().err
    assert main(["bench", "--preset", "llama-tiny", "--device", "cpu", "--compile-mode", "reduce-overhead"]) == 2
    assert "CUDA graphs" in capsys.readouterr().err


def test_loss_in_graph_trains_like_the_eager_loss():
    """make_step's two loss paths (NextTokenLoss, compiled with the model on GPU; the eager loss on
    fp32 logits) give the same parameters after two steps."""
    import torch

    from elas_compile.train.runtime import make_runtime

    rt = make_runtime("cpu", "fp32", False)
    finals = []
    for in_graph in (True, False):
        step, model = bench.make_step("llama-tiny", bench.bench_variant("elas-masked"), rt, 2, 16, 128, 0,
                                       loss_in_graph=in_graph)
        step(0)
        step(1)
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(finals[0], finals[1], rtol=0, atol=0)
    assert not torch.equal(finals[0], finals[0] * 0)


def test_plot_device_line_names_gpu_and_torch():
    meta = {"device": "cuda (bf16 autocast)", "torch": "2.11.0", "gpu": "NVIDIA H100 80GB HBM3"}
    assert bench.device_label(meta) == "NVIDIA H100 80GB HBM3, cuda (bf16 autocast), torch 2.11.0"
    assert bench.device_label({"device": "cpu (float32)", "torch": "2.13.0"}) == "cpu (float32), torch 2.13.0"
    assert bench.device_label({"device": "cpu", "note": bench.CPU_NOTE}) == "cpu, CPU smoke test, not a measurement"


def test_bar_labels_are_short():
    assert bench._short(256175.4) == "256.2k" and bench._short(35.24) == "35.2" and bench._short(9999.0) == "9999.0"
