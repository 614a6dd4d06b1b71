"""The RoPE sin/cos table pass: tables read by several consumers are computed once."""
import pytest
import torch
from torch._dynamo.utils import counters
from torch._inductor.utils import run_and_get_code

from compile_helpers import fresh_compile
from elas_compile.passes.compile import trig_tables

pytestmark = pytest.mark.usefixtures("one_thread")


def rope_layers(pos, inv_freq, qs):
    """LLaMA's rotary embedding: the tables once, then read by every 'layer'."""
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * 1.0, emb.sin() * 1.0
    out = []
    for q in qs:
        half = q.shape[-1] // 2
        rot = torch.cat((-q[..., half:], q[..., :half]), dim=-1)
        out.append(q * cos.to(q.dtype) + rot * sin.to(q.dtype))
    return out


def _inputs(device, layers=3):
    torch.manual_seed(0)
    pos = torch.arange(32, dtype=torch.float32)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16))
    return pos.to(device), inv_freq.to(device), [torch.randn(4, 32, 16).to(device) for _ in range(layers)]


def test_pass_counts_consumers_through_casts_and_views():
    g = torch.fx.Graph()
    x = g.placeholder("x")
    c = g.call_function(torch.ops.aten.cos.default, (x,))
    m = g.call_function(torch.ops.aten.mul.Tensor, (c, 2.0))
    v = g.call_function(torch.ops.aten.unsqueeze.default, (m, 0))
    uses = [g.call_function(torch.ops.aten.add.Tensor, (v, x)) for _ in range(3)]
    s = g.call_function(torch.ops.aten.sin.default, (x,))
    one = g.call_function(torch.ops.aten.add.Tensor, (s, x))  # a single consumer: left alone
    g.output((*uses, one))
    assert trig_tables.consumers(c) == 3 and trig_tables.consumers(s) == 1
    assert trig_tables.materialize_trig_tables(g) == 1
    (table,) = g.find_nodes(op="call_function", target=torch.ops.elas.materialize.default)
    assert table.args == (c,) and list(c.users) == [table] and m.args[0] is table
    assert trig_tables.materialize_trig_tables(g) == 0  # idempotent


def _compiled_code(device, install, layers=3):
    pos, inv_freq, qs = _inputs(device, layers)
    with fresh_compile(rope_tables=install):
        got, (code,) = run_and_get_code(torch.compile(rope_layers, fullgraph=True), pos, inv_freq, qs)
    for g_, e in zip(got, rope_layers(pos, inv_freq, qs)):
        torch.testing.assert_close(g_, e)
    return code


def test_compiled_rope_on_cpu_matches_eager_with_the_tables_materialized():
    code = _compiled_code("cpu", install=True)
    assert counters["elas"]["trig_table_materialized"] == 2  # cos and sin, once each
    assert "materialize" in code and "materialize" not in _compiled_code("cpu", install=False)


def _llama_trig_calls(device, install, layers=4):
    """sin( and cos( calls in the Triton/C++ code of a compiled LLaMA's forward + backward."""
    from elas_compile.train.presets import build_model, preset_config

    torch.manual_seed(0)
    cfg = preset_config("llama-tiny", 256, 64)
    cfg.num_hidden_layers = layers
    model = build_model(cfg).to(device)
    ids = torch.randint(0, 256, (2, 64), device=device)

    def step():
        model(input_ids=ids).logits.float().square().mean().backward()

    with fresh_compile(rope_tables=install):
        _, codes = run_and_get_code(torch.compile(step))
    text = "\n".join(codes)
    return text.count("sin("), text.count("cos(")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="Inductor's Triton code (GPU)")
def test_llama_triton_code_computes_each_table_once_per_graph():
    """With the pass each graph (forward, backward) computes each table once. (Without it, at the
    350m shapes every layer's RoPE kernel recomputed them: the kernel names in
    `python -m tools.profile_step`'s profile.)"""
    sin_before, cos_before = _llama_trig_calls("cuda", install=False)
    sin_after, cos_after = _llama_trig_calls("cuda", install=True)
    assert 1 <= sin_after <= 2 and 1 <= cos_after <= 2, (sin_after, cos_after)
    assert sin_before > sin_after and cos_before > cos_after, (sin_before, cos_before)
