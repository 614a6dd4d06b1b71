"""torchtitan integration: ELAS as a model converter, the way torchtitan's float8 and LoRA are.

    from elas_compile.integrations.torchtitan import ELASConverter
    spec = llama3.model_registry("8B", converters=[ELASConverter.Config(elas=ELASConfig())])

A ``ModelConfigConverter`` (``torchtitan/protocols/model.py``) transforms the model's config tree
before the trainer builds the model on the meta device. ELAS finds MLPs by what built modules
compute, not by config types, so the converter replaces the root config with one that builds an
ELAS variant of the model class: its ``__init__`` builds the model as configured and then runs
:func:`elas_compile.apply` (on the meta device: no values are needed). The ELAS modules are plain
``nn.Module``s, so the variant's ``verify_module_protocol`` skips them, and its ``init_states``
(what ``init_weights`` calls after ``to_empty``) draws their factors after torchtitan's own init.

The sparsity schedule counts optimizer steps: make ``SparsitySchedule(model)`` and call its
``step()`` after each optimizer step (``optimizer.register_step_post_hook(lambda *a: s.step())``).
Tensor parallelism is not supported: torchtitan's TP plans name the dense projections (w1, w2, w3).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch.nn as nn
from torchtitan.protocols.model import ModelConfigConverter
from torchtitan.protocols.module import Module

from elas_compile.api import apply
from elas_compile.config import ELASConfig
from elas_compile.errors import ConfigError
from elas_compile.lowrank import LowRankLinear
from elas_compile.passes.model.experts import ELASExperts, StackedLowRank
from elas_compile.passes.model.rewrite_mlp import ELASMLP

_ELAS_MODULES = (ELASMLP, ELASExperts, LowRankLinear)
_variants: dict = {}


def _elas_model_class(model_cls: type, elas: ELASConfig) -> type:
    """``model_cls`` whose instances are ELAS models (one class per model class and ELASConfig)."""
    key = (model_cls, elas)
    if key in _variants:
        return _variants[key]

    class ELASModel(model_cls):
        elas_config_of_class = elas

        def __init__(self, config, **kwargs) -> None:
            super().__init__(config, **kwargs)
            apply(self, self.elas_config_of_class)

        def verify_module_protocol(self) -> None:
            elas = [n for n, m in self.named_modules() if isinstance(m, _ELAS_MODULES)]
            failures = [f"'{n}' ({type(m).__name__})" for n, m in self.named_modules()
                        if not isinstance(m, Module) and not any(n == e or n.startswith(e + ".") for e in elas)]
            if failures:
                raise RuntimeError(f"The following modules do not satisfy the Module protocol: {', '.join(failures)}")

        def init_states(self, *, buffer_device=None) -> None:
            super().init_states(buffer_device=buffer_device)
            for m in self.modules():
                if isinstance(m, (LowRankLinear, StackedLowRank)):
                    m.reset_parameters()  # the ELAS init: torchtitan's std is a dense weight's, not a factor's

    ELASModel.__name__ = ELASModel.__qualname__ = f"ELAS{model_cls.__name__}"
    _variants[key] = ELASModel
    return ELASModel


def _elas_config(model_config: Module.Config, elas: ELASConfig) -> Module.Config:
    """A copy of ``model_config`` whose ``build()`` gives the ELAS variant of its model class; it
    is still an instance of the original config class (isinstance checks keep passing)."""
    config_cls = type(model_config)
    owner = _elas_model_class(config_cls._owner, elas)
    converted = type(f"ELAS{config_cls.__qualname__.replace('.', '')}", (config_cls,), {"_owner": owner})
    return converted(**{f.name: getattr(model_config, f.name) for f in fields(model_config) if f.init})


class ELASConverter(ModelConfigConverter):
    """Rewrites the model torchtitan builds into an ELAS model (:func:`elas_compile.apply`)."""

    @dataclass(kw_only=True, slots=True)
    class Config(ModelConfigConverter.Config):
        elas: ELASConfig = field(default_factory=ELASConfig)
        """How the model is rewritten."""

    def __init__(self, config: Config, **kwargs) -> None:
        if not isinstance(config.elas, ELASConfig):
            raise TypeError(f"ELASConverter.Config.elas must be an ELASConfig, got {type(config.elas).__name__}")
        if "attention" in config.elas.targets:
            raise ConfigError(
                "ELASConverter rewrites the FFNs only: attention targets are found by running the model once, "
                "and torchtitan builds it on the meta device with a forward that needs positions and masks. "
                "Use ELASConfig(targets=('ffn',)), or apply elas_compile.apply(model, config, example_inputs=...) "
                "to a model that holds values.")
        self.config = config

    def convert(self, model_config: Module.Config) -> Module.Config:
        return _elas_config(model_config, self.config.elas)


def elas_modules(model: nn.Module) -> list:
    """The modules of ``model`` that ELAS created (for checks and custom init flows)."""
    return [m for m in model.modules() if isinstance(m, _ELAS_MODULES)]
