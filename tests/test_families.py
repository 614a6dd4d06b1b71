"""The transformers decoder families, each from a tiny config (tests/tiny_models.py, no downloads):
``apply`` rewrites what it should, and ``torch.compile(fullgraph=True)`` gives the eager model's
loss and gradients; the families it leaves alone fail with the reason docs/sharp_edges.md gives.

A representative family of each MLP shape runs by default (under ``aot_eager``: Dynamo and
AOTAutograd, seconds per family); every family under ``aot_eager``, and the representatives under
Inductor too, run with ``-m slow`` (Inductor on every family would cost CI minutes)."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import elas_compile
from tiny_models import family

G, FU, P, X = "mlp/gated", "mlp/fused", "mlp/plain", "experts/gated"
REWRITTEN = {
    "llama": {G}, "mistral": {G}, "qwen2": {G}, "qwen3": {G}, "gemma": {G}, "gemma2": {G}, "gemma3": {G},
    "phi": {P}, "phi3": {FU}, "olmo": {G}, "olmo2": {G}, "olmo3": {G}, "granite": {G}, "cohere": {G},
    "cohere2": {G}, "exaone4": {G}, "ernie4_5": {G}, "hunyuan": {G}, "helium": {G}, "glm": {FU}, "glm4": {FU},
    "smollm3": {G}, "nemotron": {P}, "arcee": {P}, "stablelm": {G}, "falcon": {P}, "gpt_neox": {P},
    "jamba": {G, X}, "bamba": {G}, "lfm2": {G}, "deepseek_v2": {G, X}, "deepseek_v3": {G, X},
    "qwen2_moe": {G, X}, "qwen3_next": {G, X}, "glm4_moe": {G, X}, "ernie4_5_moe": {G, X}, "dots1": {G, X},
    "llama4": {G, X}, "mixtral": {X}, "qwen3_moe": {X}, "olmoe": {X}, "flex_olmo": {X}, "phimoe": {X},
    "minimax": {X}, "granitemoe": {X}, "granitemoeshared": {FU, X}, "starcoder2": {P}, "gptj": {P},
    "gpt_neo": {P}, "gpt_bigcode": {P}, "codegen": {P}, "seed_oss": {G}, "apertus": {P}, "gpt2": {P},
}
# One of each shape: gated, fused, plain with GELU, GPT-2's Conv1D + dropout + bias, F.dropout
# (Starcoder2), xIELU (Apertus), experts alone, experts with shared MLPs, Llama 4's sorted experts;
# GPT-OSS and Bloom are left alone.
DEFAULT = ("llama", "glm", "phi", "gpt2", "starcoder2", "apertus", "mixtral", "qwen2_moe", "llama4", "gpt_oss", "bloom")
LEFT_ALONE = {
    "jetmoe": "not as nn.Linear children nor in transformers' experts layout",
    "dbrx": "not as nn.Linear children nor in transformers' experts layout",
    "gpt_oss": "its gate computes getitem, getitem, clamp, clamp",
    "bloom": "its forward takes 2 inputs (hidden_states, residual)",
    "mpt": "its forward takes 2 inputs (hidden_states, residual)",
    "falcon_h1": "its output is not a projection's but mul's",
    "bitnet": "the down projection reads module 'ffn_sub_norm'",
}
SHARP_EDGES = (Path(__file__).parent.parent / "docs" / "sharp_edges.md").read_text()


def _params(names):
    return [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _loss(model, ids):
    out = model(input_ids=ids)
    logits = out.logits if hasattr(out, "logits") else out[0]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def _eager_and_compiled(name, backend):
    model = family(name)
    elas_compile.apply(model, elas_compile.ELASConfig(rank=16, dense_warmup_steps=0))  # 2:4 from the start
    assert {r.what for r in model.elas_summary.rewritten} == REWRITTEN[name]
    model.eval()  # dropout and router jitter off: the two runs see the same function
    ids = torch.randint(3, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    results = []
    for run in (model, torch.compile(model, backend=backend, fullgraph=True)):
        model.zero_grad(set_to_none=True)
        loss = _loss(run, ids)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (eager, eager_grads), (compiled, compiled_grads) = results
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    assert compiled_grads.keys() == eager_grads.keys() and eager_grads
    for n, g in eager_grads.items():
        torch.testing.assert_close(compiled_grads[n], g, atol=1e-5, rtol=1e-4, msg=n)


@pytest.mark.parametrize("name", _params(REWRITTEN))
def test_compiled_equals_eager(name, one_thread):
    _eager_and_compiled(name, "aot_eager")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in DEFAULT if n in REWRITTEN])
def test_inductor_equals_eager(name):
    _eager_and_compiled(name, "inductor")


@pytest.mark.parametrize("name", _params(LEFT_ALONE))
def test_left_alone_with_the_documented_reason(name):
    model = family(name)
    with pytest.raises(elas_compile.NothingMatchedError) as info:
        elas_compile.apply(model, elas_compile.ELASConfig(rank=16))
    reasons = {reason for _, reason in info.value.reasons}
    assert any(LEFT_ALONE[name] in r for r in reasons), reasons
    assert LEFT_ALONE[name] in str(info.value)
    assert f"`{name}`" in SHARP_EDGES  # listed there, with the reason


def test_every_family_is_tested_or_documented():
    from tiny_models import FAMILIES

    assert set(FAMILIES) == set(REWRITTEN) | set(LEFT_ALONE)
