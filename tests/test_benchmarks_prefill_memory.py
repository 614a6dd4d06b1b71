"""The ``prefill`` and ``memory`` suites of ``python -m benchmarks`` on a CPU: their smoke runs and
files, the decode loop against ``generate``, the kernels a compiled prefill and decode resolve, the
micro-batch search against a fake step that runs out of memory above a threshold, the time
budget, and the ratios of best configurations."""
import csv
import os

import pytest
import torch

from bench_helpers import suite_outputs  # (puts the repository root on sys.path)

from benchmarks import gpu_pool  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.batch_search import largest_fit, predicted_fit, search_batch  # noqa: E402
from benchmarks.suites import memory, prefill  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_prefill_on_cpu_writes_prefill_and_decode_rows(tmp_path):
    args = ["prefill", "--device", "cpu", "--preset", "llama-tiny", "--seq-len", "32", "--batch-size", "2",
            "--prompt-len", "8", "--new-tokens", "3", "--decode-batches", "1", "2", "--repeats", "1",
            "--root", str(tmp_path)]
    assert main(args) == 0
    rows, meta, report = suite_outputs(tmp_path, "prefill")[1:]
    assert list(rows[0])[:len(prefill.COLUMNS)] == prefill.COLUMNS
    got = [(r["variant"], r["phase"], r["batch"], r["mode"]) for r in rows]
    assert got == [(v, phase, b, "eager") for v in prefill.VARIANTS
                   for phase, b in (("prefill", "2"), ("decode", "1"), ("decode", "2"))]
    for row in rows:
        assert row["status"] == "ok" and float(row["tokens_per_s"]) > 0 and row["note"] == "CPU: not meaningful"
        assert row["vs_lowrank"] == row["vs_full"] == row["peak_mem_gb"] == ""
        assert row["backend"] == ("reference" if row["variant"].startswith("elas") else "dense")
    assert {k.rsplit(" ", 3)[0] for k in meta["backends"]} == {"elas-masked-attn llama-tiny"}
    assert all(b["resolved"] == "reference" for b in meta["backends"].values())
    assert "CPU: not meaningful" in report and "## Ratios" not in report
    assert main([*args, "--phases", "decode", "--variants", "full", "--tag", "decode"]) == 0
    (decode_only,) = (tmp_path / "results").glob("*_decode")
    rows = list(csv.DictReader(open(decode_only / "results.csv")))
    assert [(r["phase"], r["batch"]) for r in rows] == [("decode", "1"), ("decode", "2")]


def test_greedy_decode_with_a_static_cache_gives_generates_tokens():
    job = {"preset": "llama-tiny", "variant": "elas-masked-attn", "seed": 0, "seq_len": 32, "prompt_len": 8,
           "new_tokens": 5}
    model = prefill.build(job, torch.device("cpu"))
    assert model.dtype == torch.bfloat16 and {m.sparsity_mode for _, m in __import__("elas_compile").elas_mlps(model)} \
        == {"masked"}
    prompt = torch.randint(3, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cache = prefill.static_cache(model, 8, 5)
        tokens, seconds = prefill.greedy_decode(model, prompt, 5, model.forward, False, cache)
        expected = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=0)[:, 8:]
        keys = cache.layers[0].keys
        again, _ = prefill.greedy_decode(model, prompt, 5, model.forward, False, cache)  # the cache reused
    assert tokens.shape == (2, 5) and seconds > 0
    assert torch.equal(tokens, expected) and torch.equal(again, expected)
    assert cache.layers[0].keys is keys  # the same tensors: a compiled step's static inputs stay where they were


def test_compiled_prefill_and_decode_resolve_their_kernels_by_token_count(monkeypatch):
    """With the fused ops' CPU references allowed (ELAS_FUSED_ON_CPU, as on a GPU), a prefill of
    SPARSE_MIN_TOKENS tokens compiles to the fused op and the decode of 2 tokens to the reference
    path, each in one graph; the rows say which."""
    from benchmarks.compile_cache import fresh_compile_cache
    from elas_compile.backends import FUSED_ON_CPU_ENV, SPARSE_MIN_TOKENS

    monkeypatch.setenv(FUSED_ON_CPU_ENV, "1")
    job = {"preset": "llama-tiny", "variant": "elas-masked-attn", "seed": 0, "batch_size": 2,
           "seq_len": SPARSE_MIN_TOKENS // 2, "prompt_len": 8, "new_tokens": 3, "repeats": 1}
    cpu = torch.device("cpu")
    model = prefill.build(job, cpu)
    with torch.inference_mode(), fresh_compile_cache("test_prefill"):
        first = prefill.prefill(model, job, "default", cpu)
        second = prefill.decode(model, job, 2, "default", cpu)
    assert first["backend"] in ("cutlass", "triton") and first["graphs"] == 1
    fused = {k: n for k, n in first["fused_ops"].items() if k.startswith("lowrank_relu2_sparse24_linear")}
    assert fused == {f"lowrank_relu2_sparse24_linear_{first['backend']}": 2}  # llama-tiny's 2 MLPs
    assert second["backend"] == "reference" and "SPARSE_MIN_TOKENS" in second["backend_reason"]
    assert second["graphs"] == 1 and second["fused_ops"].get("relu2_sparsify24_fused_pre_grad") == 2
    assert not any(k.startswith("lowrank_relu2_sparse24_linear") for k in second["fused_ops"])


def test_prefill_ratios_compare_the_same_phase_batch_and_mode():
    rows = [{"preset": "p", "phase": ph, "batch": b, "mode": "m", "variant": v, "tokens_per_s": t}
            for ph, b, v, t in [("prefill", 8, "full", 100.0), ("prefill", 8, "lowrank-attn", 200.0),
                                ("prefill", 8, "elas-masked-attn", 250.0), ("decode", 1, "lowrank-attn", 50.0),
                                ("decode", 1, "elas-masked-attn", 40.0)]]
    prefill.add_ratios(rows)
    assert (rows[2]["vs_lowrank"], rows[2]["vs_full"]) == (1.25, 2.5)
    assert rows[4]["vs_lowrank"] == 0.8 and "vs_full" not in rows[4]  # no full-rank decode row
    assert "vs_lowrank" not in rows[0] and rows[1]["vs_full"] == 2.0


def test_memory_on_cpu_writes_every_variant_and_policy(tmp_path):
    args = ["memory", "--device", "cpu", "--preset", "llama-tiny", "--seq-len", "16", "--max-batch", "4",
            "--steps", "1", "--root", str(tmp_path)]
    assert main(args) == 0
    rows, meta, report = suite_outputs(tmp_path, "memory")[1:]
    assert list(rows[0])[:len(memory.COLUMNS)] == memory.COLUMNS
    policies = ["none", "block", "selective"]
    assert [(r["checkpointing"], r["variant"], r["batch"]) for r in rows] == \
        [(p, v, b) for p in policies for v in memory.VARIANTS for b in ("2", "4")]  # doubling: no memory readings
    assert all(r["status"] == "ok" and float(r["tokens_per_s"]) > 0 and r["seq_len"] == "16" for r in rows)
    assert sorted(r["variant"] for r in rows if r["best"] == "yes") == sorted(memory.VARIANTS)
    assert all(r["vs_full"] == "" and r["note"] == "CPU: not meaningful" for r in rows)
    assert meta["options"]["seq_lens"] == {"llama-tiny": 16} and meta["options"]["checkpointing"] == policies
    assert sorted(meta["backends"]) == [f"elas-masked-attn llama-tiny {p}" for p in sorted(policies)]
    assert {b["resolved"] for b in meta["backends"].values()} == {"reference"}  # a CPU
    assert "largest micro-batch that fits: none >= 4; block >= 4; selective >= 4" in report


def test_memory_options_are_checked_before_anything_runs(tmp_path, capsys):
    for extra, message in [(["--checkpointing", "none,all"], "a comma-separated list of none, block, selective"),
                           (["--seq-len", "llama-1b:64"], "llama-1b is not one of the presets asked for"),
                           (["--seq-len", "x"], "the length must be an integer"),
                           (["--start-batch", "8", "--max-batch", "4"], "1 <= --start-batch <= --max-batch"),
                           (["--gpus", "2"], "--gpus 2: this machine has 0 CUDA GPU(s)")]:
        assert main(["memory", "--device", "cpu", "--preset", "llama-tiny", *extra, "--root", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
    assert main(["memory", "--device", "cpu", "--root", str(tmp_path)]) == 2
    assert "pass --preset llama-tiny" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert memory.seq_lens(["llama-1b", "llama-3b", "llama-tiny"], ["llama-3b:1024"]) == \
        {"llama-1b": 4096, "llama-3b": 1024, "llama-tiny": 128}
    assert memory.seq_lens(["llama-1b", "llama-3b"], ["512"]) == {"llama-1b": 512, "llama-3b": 512}


class FakeGPU:
    """A step that runs out of memory above ``limit``: reserved memory ``base + per * batch`` GB;
    each point takes ``seconds`` of a fake clock."""

    def __init__(self, limit, base=20.0, per=3.0, seconds=10.0, memory=True):
        self.limit, self.base, self.per, self.seconds, self.memory = limit, base, per, seconds, memory
        self.now, self.tried = 0.0, []

    def clock(self):
        return self.now

    def measure(self, batch):
        self.tried.append(batch)
        self.now += self.seconds
        if batch > self.limit:
            return {"status": "oom"}
        return {"status": "ok", "tokens_per_s": 1000.0 * batch,
                "peak_reserved_gb": self.base + self.per * batch if self.memory else None}

    @property
    def capacity(self):
        return self.base + self.per * (self.limit + 0.5)


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 12, 31, 64])
@pytest.mark.parametrize("capacity_error", [0.0, -15.0, 4.0, 15.0, None])  # GB; None: no memory readings
def test_search_finds_the_largest_batch_that_fits(limit, capacity_error):
    gpu = FakeGPU(limit, memory=capacity_error is not None)
    rows = search_batch(gpu.measure, max_batch=64, start=2, clock=gpu.clock,
                        capacity_gb=None if capacity_error is None else gpu.capacity + capacity_error)
    ok = [r["batch"] for r in rows if r["status"] == "ok"]
    oom = [r["batch"] for r in rows if r["status"] == "oom"]
    assert max(ok) == limit and all(b <= limit for b in ok) and all(b > limit for b in oom)
    assert (limit + 1 in oom) == (limit < 64)  # the limit is bracketed by a point that did not fit
    assert [r["batch"] for r in rows] == gpu.tried and len(set(gpu.tried)) == len(gpu.tried)  # no point twice
    assert largest_fit(rows) == (str(limit) if limit < 64 else ">= 64")
    if capacity_error == 0.0:  # two fits give the line, the next point lands at the limit
        assert len(rows) <= 4
    elif capacity_error == 4.0:  # the allocator's fragmentation: one point more
        assert len(rows) <= 5
    else:  # a prediction far off, or none: log2(max_batch) and a few
        assert len(rows) <= 9


def test_search_respects_the_budget_and_stops_at_an_error():
    gpu = FakeGPU(limit=40, seconds=10.0, memory=False)
    rows = search_batch(gpu.measure, max_batch=64, start=2, clock=gpu.clock, deadline=25.0)
    assert [r["batch"] for r in rows] == [2, 4, 8]  # started at 0, 10 and 20; none at 30
    assert all(r["search_s"] == 10.0 for r in rows)
    assert largest_fit(rows) == ">= 8"
    assert search_batch(gpu.measure, max_batch=64, clock=gpu.clock, deadline=gpu.now) == []

    def broken(batch):
        return {"status": "error: RuntimeError: compile failed"} if batch == 4 else {"status": "ok"}

    assert [r["batch"] for r in search_batch(broken, max_batch=64)] == [2, 4]
    assert largest_fit([{"batch": 4, "status": "oom"}, {"batch": 2, "status": "oom"}, {"batch": 1, "status": "oom"}]) \
        == "none"
    assert largest_fit([{"batch": 2, "status": "ok"}, {"batch": 9, "status": "oom"}]) == ">= 2, < 9"


def test_prediction_uses_the_two_largest_fits():
    assert predicted_fit([(2, 26.0), (4, 32.0)], 80.0) == 20  # 3 GB a sequence over 20 GB
    assert predicted_fit([(2, 26.0)], 80.0) is None and predicted_fit([(2, 26.0), (4, 32.0)], None) is None
    assert predicted_fit([(2, 26.0), (4, 26.0)], 80.0) is None  # memory that does not grow predicts nothing


def test_measure_turns_out_of_memory_into_a_data_point():
    from elas_compile.train.runtime import make_runtime

    rt = make_runtime("cpu", "fp32", False, 1)

    class Opt:
        def zero_grad(self, set_to_none=True):
            pass

    def oom(tokens):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def cublas(tokens):
        raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)")

    def bug(tokens):
        raise ValueError("shapes do not match\nsecond line")

    assert memory.measure(oom, Opt(), rt, 2, 8, 16, 1, 0) == {"status": "oom"}
    assert memory.measure(cublas, Opt(), rt, 2, 8, 16, 1, 0) == {"status": "oom"}
    assert memory.measure(bug, Opt(), rt, 2, 8, 16, 1, 0) == {"status": "error: ValueError: shapes do not match"}
    got = memory.measure(lambda tokens: None, Opt(), rt, 2, 8, 16, 2, 1)
    assert got["status"] == "ok" and got["tokens_per_s"] > 0 and "peak_mem_gb" not in got


def test_best_configuration_ratios_compare_bests_of_the_same_preset():
    def row(variant, policy, batch, tps, status="ok"):
        return {"preset": "p", "seq_len": 4096, "variant": variant, "checkpointing": policy, "batch": batch,
                "status": status, "tokens_per_s": tps}

    rows = [row("full", "none", 2, 40.0), row("full", "block", 8, 50.0), row("lowrank-attn", "none", 4, 80.0),
            row("lowrank-attn", "selective", 8, 90.0), row("elas-masked-attn", "none", 16, 120.0),
            row("elas-masked-attn", "none", 17, None, "oom")]
    best = memory.mark_best(rows, ratios=True)
    assert [(r["variant"], r["checkpointing"], r["batch"]) for r in best] == \
        [("full", "block", 8), ("lowrank-attn", "selective", 8), ("elas-masked-attn", "none", 16)]
    assert [r.get("best") for r in rows] == [None, "yes", None, "yes", "yes", None]
    assert (rows[4]["vs_lowrank"], rows[4]["vs_full"]) == (120.0 / 90.0, 120.0 / 50.0)
    assert "vs_lowrank" not in rows[1] and "vs_full" not in rows[1] and rows[3]["vs_full"] == 90.0 / 50.0
    assert memory.summary(best)[2].startswith("p seq 4096: elas-masked-attn best 120 tok/s at micro-batch 16, "
                                              "checkpointing none = 1.333x lowrank-attn's best, 2.400x full's best")


def _job_rows(job, deadline):
    if job["name"] == "bad":
        raise RuntimeError("CUDA error: an illegal memory access\nmore")
    if job["name"] == "dies":
        os._exit(3)  # as a process killed by a CUDA fatal error
    return [{"name": job["name"], "deadline": deadline, "status": "ok", "pid": os.getpid()}]


def _skipped(job, why):
    return [{"name": job["name"], "status": why}]


def test_jobs_in_one_process_share_the_budget_and_keep_errors_as_rows(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(gpu_pool.time, "time", lambda: now[0])
    rows = gpu_pool.run_jobs(_job_rows, [{"name": "a"}, {"name": "bad"}, {"name": "c"}], skipped=_skipped,
                             deadline=1090.0)
    assert [r["status"] for r in rows] == ["ok", "error: RuntimeError: CUDA error: an illegal memory access", "ok"]
    assert rows[0]["pid"] == os.getpid() and rows[0]["deadline"] == 1030.0 and rows[2]["deadline"] == 1090.0  # a third of 90 s, then all that is left
    now[0] = 2000.0
    rows = gpu_pool.run_jobs(_job_rows, [{"name": "a"}], skipped=_skipped, deadline=1090.0)
    assert rows == [{"name": "a", "status": "skipped: the time budget (--budget-s) was spent before it started"}]


def test_jobs_over_several_processes_come_back_in_order_and_survive_a_dead_worker():
    jobs = [{"name": n} for n in ("a", "bad", "dies", "d", "e")]
    rows = gpu_pool.run_jobs(_job_rows, jobs, skipped=_skipped, gpus=2)
    assert [r["name"] for r in rows] == ["a", "bad", "dies", "d", "e"]
    assert rows[0]["status"] == rows[3]["status"] == rows[4]["status"] == "ok"
    assert rows[1]["status"] == "error: RuntimeError: CUDA error: an illegal memory access"
    assert rows[2]["status"].startswith("error: its worker process died")
    assert "exit codes" in rows[2]["status"] and "3" in rows[2]["status"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["pid"] != os.getpid() and r["gpu"] in (0, 1) for r in ok)
