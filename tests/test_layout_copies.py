"""The layout-copy pass: contiguous copies of permuted read-only tensors go through
``elas.contiguous``, which Inductor computes as a view when the buffer already has that layout."""
import pytest
import torch
from torch._dynamo.utils import counters
from torch._inductor.utils import run_and_get_code

from compile_helpers import fresh_compile
from elas_compile.passes.compile import layout_copies
from tiny_models import VOCAB, llama

aten = torch.ops.aten
pytestmark = pytest.mark.usefixtures("one_thread")


def _graph(reader=aten.mm.default, memory_format=torch.contiguous_format, source=aten.permute.default,
           to_output=False):
    """x -> source -> clone(memory_format) -> reshape -> reader(., w)"""
    g = torch.fx.Graph()
    x, w = g.placeholder("x"), g.placeholder("w")
    p = g.call_function(source, (x, [0, 2, 1, 3]) if source is aten.permute.default else (x,))
    c = g.call_function(aten.clone.default, (p,), {"memory_format": memory_format})
    v = g.call_function(aten.reshape.default, (c, [16, 64]))
    r = g.call_function(reader, (v, w)) if reader is not None else v
    g.output((r, c) if to_output else (r,))
    return g


def _rewritten(g) -> int:
    done = layout_copies.skip_layout_copies(g)
    assert len(g.find_nodes(op="call_function", target=torch.ops.elas.contiguous.default)) == done
    assert len(g.find_nodes(op="call_function", target=aten.clone.default)) == 1 - done
    return done


def test_pass_rewrites_a_permuted_contiguous_copy_read_by_a_gemm():
    g = _graph()
    assert _rewritten(g) == 1
    assert layout_copies.skip_layout_copies(g) == 0  # idempotent


@pytest.mark.parametrize("case", [
    dict(memory_format=torch.preserve_format),  # keeps the permuted strides: not a layout copy
    dict(source=aten.relu.default),  # not a permuted view
    dict(to_output=True),  # a graph output: a view could alias another output or an input
    dict(reader=aten.index_put.default),  # a scatter may be turned into an in-place write
    dict(reader=aten.add_.Tensor),  # a mutation
])
def test_pass_leaves_other_copies(case):
    assert _rewritten(_graph(**case)) == 0


def _code(fn, *args):
    with fresh_compile():
        out, (code,) = run_and_get_code(torch.compile(fn, fullgraph=True), *args)
    torch.testing.assert_close(out, fn(*args))
    return code


def test_lowering_is_a_view_when_the_layout_is_already_contiguous():
    x, w = torch.randn(8, 8), torch.randn(8, 8)
    code = _code(lambda x, w: torch.ops.elas.contiguous(torch.mm(x, w)) @ w, x, w)
    assert "contiguous" not in code.split("def call(")[1]  # no kernel: a view of mm's buffer
    code = _code(lambda x, w: torch.ops.elas.contiguous(torch.mm(x, w).t()) @ w, x, w)
    assert "cpp_fused_contiguous" in code or "cpp_fused_clone" in code  # one copy (transpose)


def test_compiled_llama_step_with_the_pass_matches_eager():
    """The attention backward's permuted gradients are rewritten; loss and gradients as eager."""
    model = llama()
    ids = torch.randint(0, VOCAB, (2, 16))
    eager = model(input_ids=ids, labels=ids).loss
    eager.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with fresh_compile(layout_copies=True):
        loss = torch.compile(model)(input_ids=ids, labels=ids).loss
        loss.backward()
    assert counters["elas"]["layout_copy_skipped"] == 3 * len(model.model.layers)  # q, k, v gradients, per layer
    torch.testing.assert_close(loss, eager)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], rtol=1e-4, atol=1e-5, msg=n)


def _identity_copies(code: str) -> int:
    """Generated Triton kernels that load a buffer and store it back in place, unchanged."""
    return sum(1 for k in code.split("@triton.jit")[1:]
               if "in_out_ptr0" in k and k.count("tl.load(") == 1 and k.count("tl.store(") == 1
               and "tl.store(in_out_ptr0 + (x0), tmp0" in k and "tmp1" not in k.split("'''")[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (cuDNN attention)")
def test_cuda_llama_step_has_no_identity_copies_and_the_same_gradients():
    model = llama().cuda()
    ids = torch.randint(0, VOCAB, (8, 64), device="cuda")
    runs = {}
    for setting in ("keep", "skip"):
        model.zero_grad(set_to_none=True)
        with fresh_compile(layout_copies=setting == "skip"), torch.autocast("cuda", dtype=torch.bfloat16):
            def step():
                loss = torch.compile(model)(input_ids=ids, labels=ids).loss
                loss.backward()
                return loss
            loss, codes = run_and_get_code(step)
        runs[setting] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()},
                         sum(_identity_copies(c) for c in codes), counters["elas"]["layout_copy_skipped"])
    print({k: (v[2], v[3]) for k, v in runs.items()})
    assert runs["keep"][2] >= 2 and runs["keep"][3] == 0  # without the pass: identity copies, per layer
    assert runs["skip"][2] == 0 and runs["skip"][3] >= 2
    # cuDNN's attention backward may sum in another order from run to run: close, not bit-identical
    torch.testing.assert_close(runs["skip"][0], runs["keep"][0], rtol=1e-3, atol=1e-5)
    for n in runs["keep"][1]:
        torch.testing.assert_close(runs["skip"][1][n], runs["keep"][1][n], rtol=2e-2, atol=1e-4, msg=n)
