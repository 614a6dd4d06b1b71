"""The Inductor passes: the backend they choose runs (proved from the compiled code), they chain
with a user's pass, keep numerics and touch nothing but ELAS ops."""
import warnings

import pytest
import torch
from torch._inductor import config as inductor_config
from torch._inductor.utils import run_and_get_code
from torch.testing import FileCheck

import elas_compile
from elas_compile.backends import FUSED_ON_CPU_ENV
from elas_compile.diagnostics import reset_warnings
from elas_compile.passes.compile import inductor as elas_inductor
from tiny_models import MODELS, VOCAB, loss_of

# the opaque ops each backend leaves in Inductor's generated code
SPARSE_GEMM = "torch.ops.elas.cslt_mm.default"
CUTLASS_UP = "torch.ops.elas.cutlass_up_relu2_sparse24.default"
CUTLASS_GRAD = "torch.ops.elas.cutlass_grad_relu2_sparse24.default"
REFERENCE = "torch.ops.elas.relu2_sparsify24.default"


def _bf16_model(warmup, kernels="auto"):
    torch.manual_seed(0)
    model = MODELS["llama"]().to(torch.bfloat16)
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=warmup, kernels=kernels))
    return model


def _compiled_step_code(model, ids):
    """Loss and gradients of one compiled step, and the code Inductor generated for it (caches
    off: a cache hit would still return the code, but skip the passes under test)."""
    compiled = torch.compile(model, fullgraph=True)

    def step():
        loss = loss_of(compiled, ids)
        loss.backward()
        return loss.detach()

    with inductor_config.patch(force_disable_caches=True):
        loss, code = run_and_get_code(step)
    return loss, "\n".join(code)


@pytest.mark.parametrize("kernels", ["triton", "cutlass"])
def test_fused_backends_run_and_match_eager(kernels, monkeypatch):
    monkeypatch.setenv(FUSED_ON_CPU_ENV, "1")  # the fused ops run their kernels' CPU references
    model = _bf16_model(warmup=0, kernels=kernels)
    ids = torch.randint(3, VOCAB, (2, 64))
    loss, code = _compiled_step_code(model, ids)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ref = loss_of(model, ids)
    ref.backward()
    torch.testing.assert_close(loss.float(), ref.detach().float(), atol=2e-2, rtol=1e-2)
    for g, r in zip(grads, (p.grad for p in model.parameters())):
        assert ((g.double() - r.double()).norm() / r.double().norm().clamp_min(1e-12)).item() < 0.05
    FileCheck().check(SPARSE_GEMM).run(code)
    FileCheck().check_not(REFERENCE).run(code)
    check = FileCheck().check if kernels == "cutlass" else FileCheck().check_not
    check(CUTLASS_UP).run(code)
    check = FileCheck().check if kernels == "cutlass" else FileCheck().check_not
    check(CUTLASS_GRAD).run(code)


def test_reference_backend_and_warm_up_run_no_sparse_gemm(monkeypatch):
    monkeypatch.setenv(FUSED_ON_CPU_ENV, "1")
    ids = torch.randint(3, VOCAB, (2, 64))
    _, code = _compiled_step_code(_bf16_model(warmup=0, kernels="reference"), ids)
    FileCheck().check(REFERENCE).check_not(SPARSE_GEMM).run(code)
    _, code = _compiled_step_code(_bf16_model(warmup=1, kernels="triton"), ids)  # dense warm-up
    FileCheck().check_not(SPARSE_GEMM).check_not("torch.ops.elas").run(code)


def test_a_backend_that_cannot_run_falls_back_with_one_warning(monkeypatch):
    monkeypatch.delenv(FUSED_ON_CPU_ENV, raising=False)
    reset_warnings()
    model = _bf16_model(warmup=0, kernels="triton")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _, code = _compiled_step_code(model, torch.randint(3, VOCAB, (2, 64)))
    msgs = [str(w.message) for w in seen if "cannot run here" in str(w.message)]
    assert len(msgs) == 1 and "device cpu" in msgs[0] and "'reference'" in msgs[0], msgs
    FileCheck().check(REFERENCE).check_not(SPARSE_GEMM).run(code)


def _routed(x, w):
    """A group-limited router's shape: an in-place scatter_ whose result is unused."""
    scores = x @ w
    mask = torch.zeros_like(scores)
    mask.scatter_(1, scores.topk(2, dim=-1).indices, 1)
    return scores * mask


@pytest.mark.parametrize("with_apply", [False, True])
def test_unused_in_place_ops_survive_the_passes(with_apply):
    if with_apply:  # installs the ELAS passes for every later compilation of the process
        elas_compile.apply(MODELS["llama"](), elas_compile.ELASConfig(rank=16))
    x, w = torch.randn(16, 8), torch.randn(8, 6)
    torch._dynamo.reset()
    with inductor_config.patch(force_disable_caches=True):
        got = torch.compile(_routed, fullgraph=True)(x, w)
    torch.testing.assert_close(got, _routed(x, w))
    assert int((got != 0).sum(-1).max()) == 2


def test_post_grad_pass_fuses_relu2_sparsify():
    def f(x):
        return torch.ops.elas.sparsify24(torch.relu(x) ** 2, "masked") * 3

    x = torch.randn(8, 32)
    with inductor_config.patch(pre_grad_custom_pass=None, post_grad_custom_post_pass=elas_inductor.ELASPostGradPass(),
                               force_disable_caches=True):
        out, code = run_and_get_code(torch.compile(f, fullgraph=True), x)
    FileCheck().check(REFERENCE).check_not("torch.ops.elas.sparsify24").run("\n".join(code))
    torch.testing.assert_close(out, f(x))


def test_install_chains_a_users_pass_and_adds_no_step_pass():
    calls = []

    def user_pass(graph):
        calls.append(len(graph.nodes))

    with inductor_config.patch(pre_grad_custom_pass=user_pass, post_grad_custom_post_pass=None,
                               force_disable_caches=True):
        elas_inductor.install()
        elas_inductor.install()  # idempotent
        passes = inductor_config.pre_grad_custom_pass.passes  # one callable: torch 2.11 takes no list
        assert passes[0] is user_pass and sum(isinstance(p, elas_inductor.ELASPreGradPass) for p in passes) == 1
        post = inductor_config.post_grad_custom_post_pass.passes
        assert [type(p) for p in post] == [elas_inductor.ELASPostGradPass]
        torch.compile(lambda x: torch.relu(x) + 1)(torch.randn(4))
    assert calls, "the user's pass still runs"
    assert elas_inductor.ChainedPass([user_pass]).uuid() is None  # no uuid: Inductor must not cache it


def test_step_passes_are_scoped_to_the_block():
    with inductor_config.patch(post_grad_custom_post_pass=None):
        elas_inductor.install()
        with elas_compile.step_passes():
            inside = [type(p) for p in inductor_config.post_grad_custom_post_pass.passes]
        after = [type(p) for p in inductor_config.post_grad_custom_post_pass.passes]
    assert inside == [elas_inductor.ELASPostGradPass, elas_inductor.TrigTablePass, elas_inductor.LayoutCopyPass]
    assert after == [elas_inductor.ELASPostGradPass]


def test_autocast_runs_the_ops_in_the_autocast_dtype():
    x = torch.randn(4, 16)
    w = torch.randn(8, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.ops.elas.sparse24_linear(x.bfloat16(), w, "masked")
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert w.grad.dtype == torch.float32


def test_uuid_hashes_every_op_kernel_and_pass_source():
    a, b = elas_inductor.ELASPreGradPass(), elas_inductor.ELASPostGradPass()
    assert isinstance(a.uuid(), bytes) and len(a.uuid()) == 32 and a.uuid() != b.uuid()
    assert a.uuid() == elas_inductor.ELASPreGradPass().uuid()
    names = {f.replace("\\", "/").split("/")[-1] for f in elas_inductor.source_files()}
    assert {"fused_ffn.py", "ops.py", "backends.py", "cusparselt.py", "fusion.py", "relu2_sparsify.py",
            "sparse24_backward.py", "up_relu2_sparse24.cu", "grad_relu2_sparse24.cu"} <= names


@pytest.fixture(autouse=True)
def _restore_inductor_config():
    saved = (inductor_config.pre_grad_custom_pass, inductor_config.post_grad_custom_post_pass)
    yield
    inductor_config.pre_grad_custom_pass, inductor_config.post_grad_custom_post_pass = saved
