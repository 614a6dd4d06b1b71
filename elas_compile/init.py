"""Initialising an ELAS model built without values: the meta-device flows of large models.

A model built under ``torch.device("meta")`` and rewritten by :func:`elas_compile.apply` holds
factors without values; after ``to_empty`` every flow must draw them again:

- FSDP2's recipe (``for m in model.modules(): m.reset_parameters()``): ``LowRankLinear`` and
  ``ELASMLP`` have ``reset_parameters``;
- torchtitan's ``model.init_weights()``: its blocks call ``feed_forward.init_weights(std)``,
  which ``ELASMLP`` has;
- transformers' ``model.init_weights()``: its ``_init_weights(module)`` knows nn.Linear, not a
  LowRankLinear or the experts' stacked factors, so :func:`install_hf_init` (called by ``apply``)
  teaches the model's instance to call ``reset_parameters`` on them and leave every other module
  to transformers.

Every flow gives the factors the distribution of an eagerly built ELAS model (``init_factors``).
``init="svd"`` needs the weights' values, so on a meta model :func:`check_svd_init` refuses it.
"""
from __future__ import annotations

import sys
import types

import torch.nn as nn

from elas_compile.config import ELASConfig
from elas_compile.errors import ELASError
from elas_compile.lowrank import meta_svd_message


def check_svd_init(model: nn.Module, config: ELASConfig) -> None:
    """Refuse ``init="svd"`` on a model whose weights are on the meta device, naming the module."""
    if config.init != "svd":
        return
    for name, module in model.named_modules():
        if any(p.is_meta for p in module.parameters(recurse=False)):
            raise ELASError(meta_svd_message(f"module '{name or type(model).__name__}'"))


def _holds_elas_factors(module: nn.Module) -> bool:
    """A module of elas_compile with parameters of its own (LowRankLinear, the experts' stacked
    factors): the modules ``apply`` creates whose init transformers does not know."""
    return (type(module).__module__.startswith("elas_compile.") and hasattr(module, "reset_parameters")
            and any(True for _ in module.parameters(recurse=False)))


def _init_weights_with_factors(self, module: nn.Module) -> None:
    """transformers' ``_init_weights`` of this model, plus the ELAS factors' own init."""
    if _holds_elas_factors(module):
        # transformers flags the tensors it loaded; reset_parameters may draw into views, which
        # carry no flag, so a loaded module is skipped here as a whole
        if not all(getattr(p, "_is_hf_initialized", False) for p in module.parameters(recurse=False)):
            module.reset_parameters()
    else:
        type(self)._init_weights(self, module)


def install_hf_init(model: nn.Module) -> None:
    """Make transformers' ``init_weights`` / ``initialize_weights`` of ``model`` initialise the ELAS
    factors too. Set on each transformers ``PreTrainedModel`` instance inside ``model`` (a
    composite model dispatches its sub-models' modules to their own ``_init_weights``); the class
    is not patched, so models without ELAS are untouched. A bound method, so ``copy.deepcopy``
    binds it to the copy."""
    transformers = sys.modules.get("transformers")
    if transformers is None:  # not a transformers model: nothing of transformers to teach
        return
    for module in model.modules():
        if isinstance(module, transformers.PreTrainedModel):
            module._init_weights = types.MethodType(_init_weights_with_factors, module)
