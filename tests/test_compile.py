"""torch.compile(fullgraph=True) of rewritten models: one graph, eager parity, one recompile at the switch."""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import elas_compile
from tiny_models import MODELS, VOCAB, loss_of


def _model(warmup=2, backward="masked"):
    torch.manual_seed(0)
    model = MODELS["llama"]()
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=warmup, backward=backward))
    return model


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_compiled_matches_eager(model, compiled, ids, atol, rtol):
    """Loss and every gradient of one step, compiled against eager."""
    model.zero_grad()
    loss = loss_of(compiled, ids)
    loss.backward()
    got = _grads(model)
    model.zero_grad()
    ref = loss_of(model, ids)
    ref.backward()
    torch.testing.assert_close(loss, ref, atol=atol, rtol=rtol)
    want = _grads(model)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=atol, rtol=10 * rtol)


@pytest.mark.parametrize("backward", ["masked", "ste"])
def test_one_graph_and_one_recompile_at_the_switch(backward):
    model = _model(backward=backward)
    sched = elas_compile.SparsitySchedule(model)
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=counter)
    ids = torch.randint(3, VOCAB, (2, 16))
    for step in range(6):
        assert_compiled_matches_eager(model, compiled, ids, atol=1e-5, rtol=1e-5)
        assert counter.frame_count == (1 if step < 2 else 2), f"step {step}: {counter.frame_count} graphs"
        sched.step()
    assert sched.sparse_active


def test_inductor_matches_eager():
    model = _model(warmup=0)
    compiled = torch.compile(model, fullgraph=True)
    assert_compiled_matches_eager(model, compiled, torch.randint(3, VOCAB, (2, 16)), atol=1e-4, rtol=1e-4)
