"""The training loop's loss module: `wrap_model` returns the model and its next-token loss
compiled as one module; it must give the eager loss and gradients (mean and sum)."""
from __future__ import annotations

import torch

from elas_compile.train.lm_loss import NextTokenLoss, next_token_loss
from elas_compile.train.parallel import wrap_model
from elas_compile.train.runtime import Runtime

from tiny_models import VOCAB, llama


def _eager(model, batch, reduction="mean"):
    return next_token_loss(model(input_ids=batch[:, :-1], use_cache=False).logits, batch, reduction)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_wrap_model_compiles_model_and_loss_together():
    torch.manual_seed(0)
    model = llama().train()
    batch = torch.randint(0, VOCAB, (2, 17))
    ref = _eager(model, batch)
    ref.backward()
    ref_grads = _grads(model)
    model.zero_grad(set_to_none=True)

    rt = Runtime(device=torch.device("cpu"), amp_dtype=None, compile=True)
    loss_fn = wrap_model(model, rt, compile_backend="aot_eager")
    assert isinstance(getattr(loss_fn, "_orig_mod", None), NextTokenLoss)  # one compiled module
    loss = loss_fn(batch)
    loss.backward()
    torch.testing.assert_close(loss, ref)
    grads = _grads(model)
    assert grads.keys() == ref_grads.keys() and grads
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], msg=name)

    with torch.no_grad():  # the validation loss: a sum over tokens
        total = loss_fn(batch, "sum")
    torch.testing.assert_close(total, ref.detach() * batch[:, 1:].numel())


def test_wrap_model_without_compile_is_the_eager_loss():
    torch.manual_seed(0)
    model = llama().train()
    batch = torch.randint(0, VOCAB, (2, 9))
    loss_fn = wrap_model(model, Runtime(device=torch.device("cpu"), amp_dtype=None, compile=False))
    assert isinstance(loss_fn, NextTokenLoss) and loss_fn.model is model
    torch.testing.assert_close(loss_fn(batch), _eager(model, batch))
