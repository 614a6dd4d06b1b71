"""Inference on an ELAS model: transformers' generate(), eager and compiled, and forwards under
no_grad / inference_mode that build no autograd state."""
import warnings

import pytest
import torch

import elas_compile
from tiny_models import VOCAB, llama


def _sparse_model():
    return elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, dense_warmup_steps=0)).eval()


def _prompt():
    return torch.randint(3, VOCAB, (2, 6), generator=torch.Generator().manual_seed(3))


@torch.no_grad()
def _greedy_without_cache(model, ids, steps):
    for _ in range(steps):
        next_id = model(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    return ids


def _generate(model, ids):
    return model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)


def test_generate_with_the_kv_cache_matches_full_forwards():
    model = _sparse_model()
    assert {m.sparsity_mode for _, m in elas_compile.elas_mlps(model)} == {"masked"}
    ids = _prompt()
    assert torch.equal(_generate(model, ids), _greedy_without_cache(model, ids, 5))


class _SavedTensors(torch.autograd.graph.saved_tensors_hooks):
    """Counts the tensors autograd saves for a backward."""

    def __init__(self):
        self.count = 0

        def pack(t):
            self.count += 1
            return t

        super().__init__(pack, lambda t: t)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_inference_forwards_build_no_autograd_state(context):
    model = _sparse_model()
    saved = _SavedTensors()
    with context(), saved:
        logits = model(input_ids=_prompt()).logits
    assert saved.count == 0 and logits.grad_fn is None and not logits.requires_grad
    saved = _SavedTensors()
    with saved:  # the same forward in grad mode does save (the hook sees it)
        model(input_ids=_prompt())
    assert saved.count > 0


@pytest.mark.slow
def test_compiled_generate_matches_eager():
    model = _sparse_model()
    ids = _prompt()
    eager = _generate(model, ids)
    model.forward = torch.compile(model.forward, dynamic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference-path notice of a float32 model on a CPU
        assert torch.equal(_generate(model, ids), eager)
        saved = _SavedTensors()
        with torch.inference_mode(), saved:
            model(input_ids=ids)
    assert saved.count == 0
