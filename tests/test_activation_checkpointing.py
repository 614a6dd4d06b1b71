"""Activation checkpointing policies of ``elas_compile.train.parallel`` (``--activation-checkpointing
none|block|selective``): the same loss and gradients as without checkpointing, eager and compiled;
what each policy recomputes (forward calls) and what it keeps (saved-tensor bytes); the option's
parsing in ``elas-compile train`` and ``elas-compile bench``."""
import argparse
import json

import pytest
import torch
import torch.nn as nn
from torch._dynamo.utils import counters

import elas_compile
from elas_compile.cli import main
from elas_compile.train.errors import TrainError
from elas_compile.train.parallel import attention_of, checkpoint_policy, wrap_model
from elas_compile.train.runtime import make_runtime
from tiny_models import VOCAB, llama

pytestmark = pytest.mark.usefixtures("one_thread")


def _elas_llama():
    torch.manual_seed(0)
    return elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, dense_warmup_steps=0,
                                                               targets=("ffn", "attention")))


def _tokens():
    return torch.randint(3, VOCAB, (2, 33), generator=torch.Generator().manual_seed(1))


def _loss_and_grads(policy, compile_backend=None):
    model = _elas_llama()
    rt = make_runtime("cpu", "fp32", compile_backend is not None, 1, "default")
    loss_fn = wrap_model(model, rt, activation_checkpointing=policy, compile_backend=compile_backend or "inductor")
    loss = loss_fn(_tokens())
    loss.backward()
    grads = {n.replace("_checkpoint_wrapped_module.", ""): p.grad for n, p in model.named_parameters()}
    return loss.detach(), grads, model


@pytest.mark.parametrize("policy", ["block", "selective"])
def test_checkpointing_gives_the_loss_and_gradients_of_none(policy):
    loss, grads, _ = _loss_and_grads("none")
    got_loss, got_grads, model = _loss_and_grads(policy)
    assert {m.sparsity_mode for _, m in elas_compile.elas_mlps(model)} == {"masked"}  # 2:4 on: the real path
    assert model.state_dict().keys() == _elas_llama().state_dict().keys()  # checkpoints keep their names
    torch.testing.assert_close(got_loss, loss, rtol=0, atol=0)
    assert got_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-6, atol=1e-7, msg=name)


def test_selective_compiled_gives_the_loss_and_gradients_of_none_and_saves_less():
    loss, grads, _ = _loss_and_grads("none")
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    got_loss, got_grads, _ = _loss_and_grads("selective", compile_backend="aot_eager")
    # one graph: the checkpointed attention is compiled with the rest (transformers' output-capturing
    # hooks broke the graph at every checkpointed region: parallel.compile_checkpointed_regions)
    assert counters["stats"]["unique_graphs"] - graphs == 1
    assert sum(counters["graph_break"].values()) == breaks
    torch.testing.assert_close(got_loss, loss, rtol=1e-6, atol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    # AOTAutograd's partition of the compiled step keeps the policy: the attention is not saved
    assert _saved_bytes("selective", "aot_eager")[0] < 0.8 * _saved_bytes("none", "aot_eager")[0]


def _count_calls(model):
    counts = {"attention": 0, "mlp": 0}
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("self_attn", "mlp"):  # the wrapper's inner module is called for each (re)computation
            inner = getattr(module, "_checkpoint_wrapped_module", module)
            key = "attention" if leaf == "self_attn" else "mlp"
            # a pre-hook: a recomputation stops as soon as it has what the backward needs (before
            # the forward returns, where a forward hook would fire)
            inner.register_forward_pre_hook(lambda *a, key=key: counts.__setitem__(key, counts[key] + 1))
    return counts


def _saved_bytes(policy, compile_backend=None):
    """Bytes autograd keeps for the backward of one forward, and the module calls of fwd + bwd
    (eager; compiled, the calls happened at tracing)."""
    model = _elas_llama()
    rt = make_runtime("cpu", "fp32", compile_backend is not None, 1, "default")
    loss_fn = wrap_model(model, rt, activation_checkpointing=policy, compile_backend=compile_backend or "inductor")
    if compile_backend:
        loss_fn(_tokens())  # compiles: the next call runs the compiled graphs
    counts = _count_calls(model)
    seen, total = set(), [0]

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape), t.stride(), t.storage_offset())
        if key not in seen and not isinstance(t, nn.Parameter):
            seen.add(key)
            total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(_tokens())
    forward = dict(counts)
    loss.backward()
    return total[0], forward, counts


def test_each_policy_recomputes_what_it_says_and_saves_less():
    none_bytes, none_fwd, none_all = _saved_bytes("none")
    sel_bytes, sel_fwd, sel_all = _saved_bytes("selective")
    block_bytes, _, block_all = _saved_bytes("block")
    layers = 2
    assert none_fwd == sel_fwd == {"attention": layers, "mlp": layers}
    assert none_all == {"attention": layers, "mlp": layers}  # nothing recomputed
    assert sel_all == {"attention": 2 * layers, "mlp": layers}  # attention recomputed, the FFN kept
    assert block_all == {"attention": 2 * layers, "mlp": 2 * layers}  # the whole block recomputed
    assert block_bytes < sel_bytes < none_bytes


def test_policy_values_and_blocks_without_attention():
    assert [checkpoint_policy(v) for v in (None, False, True, "none", "block", "selective")] == \
        ["none", "none", "block", "none", "block", "selective"]
    with pytest.raises(TrainError, match="unknown --activation-checkpointing 'attention'"):
        checkpoint_policy("attention")
    block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(TrainError, match="Sequential has none among its children; use --activation-checkpointing block"):
        attention_of(block)
    assert attention_of(llama().model.layers[0]) == "self_attn"


def test_train_option_takes_a_policy_and_alone_means_block():
    from elas_compile.train.options import add_train_arguments

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    assert p.parse_args([]).activation_checkpointing == "none"
    assert p.parse_args(["--activation-checkpointing"]).activation_checkpointing == "block"
    assert p.parse_args(["--activation-checkpointing", "selective"]).activation_checkpointing == "selective"
    with pytest.raises(SystemExit):
        p.parse_args(["--activation-checkpointing", "some"])


def test_bench_runs_with_selective_checkpointing(tmp_path, monkeypatch):
    from elas_compile.train import bench

    seen = []
    real = bench.make_step

    def spy(*a, **k):
        step, model = real(*a, **k)
        seen.append(sum(hasattr(m, "_checkpoint_wrapped_module") for m in model.modules()))
        return step, model

    monkeypatch.setattr(bench, "make_step", spy)
    out = tmp_path / "bench"
    assert main(["bench", "--preset", "llama-tiny", "--variants", "elas-masked-attn", "--steps", "1", "--warmup", "0",
                 "--batch-size", "2", "--seq-len", "16", "--activation-checkpointing", "selective",
                 "--out", str(out)]) == 0
    assert seen == [2]  # llama-tiny's two attention modules, wrapped
    data = json.loads((out / "bench.json").read_text())
    assert data["meta"]["activation_checkpointing"] == "selective" and data["rows"][0]["error"] == ""
