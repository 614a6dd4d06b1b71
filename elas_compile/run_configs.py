"""The configs of an ``elas-compile train`` run whose checkpoint holds no ``config.json``: rebuilt
from the run's ``run.json`` the way the run built its model (preset or ``--model-config``, the
variant's :class:`ELASConfig`), with the vocabulary read from the saved embedding.

A checkpoint with ``config.json`` (written by :func:`elas_compile.checkpoint.write_configs`) does
not need this; run folders written without one do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

from elas_compile.config import ELASConfig
from elas_compile.errors import ELASError


def _embedding_rows(weights: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        for key in f.keys():
            if key.endswith("embed_tokens.weight"):
                return f.get_slice(key).get_shape()[0]
    raise ELASError(f"{weights} has no embed_tokens.weight: not a checkpoint of elas-compile train")


def configs_of_run(run_dir: Path, weights: Path) -> Tuple[Any, str, Optional[ELASConfig]]:
    """``(transformers config, model class name, ELASConfig or None)`` of the run in ``run_dir``."""
    from elas_compile.train.errors import TrainError
    from elas_compile.train.options import read_saved_options
    from elas_compile.train.presets import load_model_config, preset_config
    from elas_compile.train.variant import Variant

    try:
        options = read_saved_options(run_dir)
        if options is None:
            raise ELASError(f"{weights.parent} holds no config.json, and {run_dir} no run.json to rebuild it from; "
                            "save the model with elas_compile.save_pretrained")
        vocab = _embedding_rows(weights)
        if options.get("model_config"):
            config = load_model_config(options["model_config"], vocab, options["seq_len"])
        else:
            config = preset_config(options["preset"], vocab, options["seq_len"])
        elas_config = Variant.from_options(options).elas_config()
    except TrainError as e:
        raise ELASError(f"cannot rebuild the model of the run {run_dir}: {e}") from None
    return config, _causal_lm_class(config), elas_config


def _causal_lm_class(config) -> str:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM._model_mapping[type(config)].__name__
