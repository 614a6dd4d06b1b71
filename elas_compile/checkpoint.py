"""Save and load ELAS models the Hugging Face way: a folder of ``config.json`` (the original
architecture), ``elas_config.json`` (the :class:`ELASConfig`) and ``model.safetensors``.

``from_pretrained`` builds the original model on the meta device from ``config.json``, applies
ELAS with the saved config, materializes it (``to_empty``), loads the weights (the sparsity mode
comes with them) and lets transformers recompute what no file holds (the non-persistent rotary
tables): the logits are those of the saved model. A run folder of ``elas-compile train`` loads
the same way (its ``checkpoint/``).

transformers' own ``from_pretrained`` must not load such a folder: it would build the original
MLPs and fill them with random weights. ``config.json`` therefore names the MLP activation
:data:`REFUSAL` (transformers' activation table has no such entry: building the model raises a
``KeyError`` that says how to load it) and the architectures ``ELAS<name>`` (serving stacks that
dispatch on ``architectures`` refuse them); the original values are kept under its ``"elas"`` key.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from elas_compile.config import ELASConfig
from elas_compile.diagnostics import warn_once
from elas_compile.errors import ELASError

CONFIG_NAME, ELAS_CONFIG_NAME, WEIGHTS_NAME = "config.json", "elas_config.json", "model.safetensors"
FORMAT = 1
ACTIVATION_FIELDS = ("hidden_act", "hidden_activation", "activation_function")
REFUSAL = "elas_compile.relu2_sparse24 (an ELAS model: load it with elas_compile.from_pretrained(path))"
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}

PathLike = Union[str, Path]


def _unwrap(model: nn.Module) -> nn.Module:
    return model._orig_mod if isinstance(model, torch._dynamo.eval_frame.OptimizedModule) else model


def write_configs(folder: PathLike, model: nn.Module) -> None:
    """Write ``config.json`` (and, for an ELAS model, ``elas_config.json``) of the transformers
    model ``model`` into ``folder``, beside its ``model.safetensors``: what makes the folder load
    with :func:`from_pretrained`. A model without ELAS gets its plain ``config.json``."""
    model = _unwrap(model)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ELASError(f"{type(model).__name__} has no transformers config (model.config); save_pretrained writes "
                        "transformers models. For another nn.Module save model.state_dict() (the sparsity mode is "
                        "in it) and rebuild with elas_compile.apply + load_state_dict.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = config.to_dict()
    doc["architectures"] = list(doc.get("architectures") or [type(model).__name__])
    elas_config = getattr(model, "elas_config", None)
    if elas_config is not None:
        doc = _refusing_config(doc)
        fields = dataclasses.asdict(elas_config)
        _write_json(folder / ELAS_CONFIG_NAME, {"format": FORMAT, **fields, "targets": list(fields["targets"])})
    _write_json(folder / CONFIG_NAME, doc)


def _refusing_config(doc: Dict[str, Any]) -> Dict[str, Any]:
    """``doc`` with the markers that make transformers refuse it, the originals under ``"elas"``."""
    original = {k: doc[k] for k in (*ACTIVATION_FIELDS, "architectures") if k in doc}
    if not any(k in doc for k in ACTIVATION_FIELDS):
        warn_once(f"save_pretrained: this config has none of {ACTIVATION_FIELDS}, so transformers' own "
                  "from_pretrained will not refuse the folder (it would load random MLPs): load it with "
                  "elas_compile.from_pretrained.")
    marked = {**doc, **{k: REFUSAL for k in ACTIVATION_FIELDS if k in doc}}
    marked["architectures"] = [f"ELAS{name}" for name in doc["architectures"]]
    marked["elas"] = {"format": FORMAT, "load_with": "elas_compile.from_pretrained(path)", "original": original}
    return marked


def _write_json(path: Path, doc: Dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def save_pretrained(model: nn.Module, path: PathLike) -> Path:
    """Save an ELAS transformers model to the folder ``path``: ``config.json``, ``elas_config.json``
    and ``model.safetensors`` (tied weights once). Load it with :func:`from_pretrained`."""
    model = _unwrap(model)
    if getattr(model, "elas_config", None) is None:
        raise ELASError(f"save_pretrained got a {type(model).__name__} without ELAS; apply elas_compile.apply(model) "
                        "first, or save a plain model with its own save_pretrained.")
    folder = Path(path)
    write_configs(folder, model)
    from safetensors.torch import save_model  # safetensors: a dependency of the `train` extra and of transformers

    save_model(model, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    return folder


def from_pretrained(path: PathLike, *, dtype: Optional[torch.dtype] = None, device: Union[str, torch.device] = "cpu",
                    attn_implementation: Optional[str] = None, **elas_overrides) -> nn.Module:
    """The model saved in ``path`` (a :func:`save_pretrained` folder, or an ``elas-compile train``
    run folder), in eval mode, on ``device``, in ``dtype`` (default: the stored one).

    ``elas_overrides`` replace fields of the saved :class:`ELASConfig`, e.g. ``kernels="reference"``.
    """
    folder = _checkpoint_folder(Path(path))
    weights = folder / WEIGHTS_NAME
    hf_config, class_name, elas_config = _read_configs(folder, weights)
    if elas_overrides:
        if elas_config is None:
            raise ELASError(f"{folder} holds a model without ELAS; ELASConfig fields {sorted(elas_overrides)} do not apply")
        unknown = set(elas_overrides) - {f.name for f in dataclasses.fields(ELASConfig)}
        if unknown:
            raise TypeError(f"from_pretrained() got unexpected keyword arguments {sorted(unknown)} (neither an "
                            "ELASConfig field nor dtype / device / attn_implementation)")
        elas_config = dataclasses.replace(elas_config, **elas_overrides)
    model = _build(hf_config, class_name, dtype or _stored_dtype(weights), attn_implementation)
    if elas_config is not None:
        from elas_compile.api import apply

        apply(model, dataclasses.replace(elas_config, init="random"))  # the values come from the file
        model.elas_config = elas_config
    model.to_empty(device=device)
    if hasattr(model, "tie_weights"):
        model.tie_weights()  # to_empty gave tied weights separate tensors
    _load_weights(model, weights, device)
    _recompute_unsaved(model)
    return model.eval()


def _checkpoint_folder(path: Path) -> Path:
    if (path / WEIGHTS_NAME).is_file():
        return path
    if (path / "checkpoint" / WEIGHTS_NAME).is_file():  # an elas-compile train run folder
        return path / "checkpoint"
    raise ELASError(f"{path} holds no {WEIGHTS_NAME} (nor checkpoint/{WEIGHTS_NAME} of an elas-compile run); pass the "
                    "folder written by elas_compile.save_pretrained or the run's --out folder")


def _read_configs(folder: Path, weights: Path) -> Tuple[Any, str, Optional[ELASConfig]]:
    """``(transformers config, model class name, ELASConfig or None)`` of a checkpoint folder."""
    from transformers import AutoConfig

    if not (folder / CONFIG_NAME).is_file():
        from elas_compile.run_configs import configs_of_run

        return configs_of_run(folder.parent, weights)
    doc = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    elas = doc.pop("elas", None)
    if elas is not None:
        doc.update(elas["original"])
    class_name = doc["architectures"][0]
    config = AutoConfig.for_model(doc.pop("model_type"), **doc)
    elas_config = _read_elas_config(folder / ELAS_CONFIG_NAME) if elas is not None else None
    return config, class_name, elas_config


def _read_elas_config(path: Path) -> ELASConfig:
    if not path.is_file():
        raise ELASError(f"{path} is missing: its config.json is of an ELAS model; copy the whole folder")
    fields = json.loads(path.read_text(encoding="utf-8"))
    fmt = fields.pop("format", None)
    if fmt != FORMAT:
        raise ELASError(f"{path} has format {fmt!r}; this elas_compile reads format {FORMAT} (use the version that wrote it)")
    return ELASConfig(**{**fields, "targets": tuple(fields["targets"])})


def _stored_dtype(weights: Path) -> torch.dtype:
    """The dtype of the first floating-point tensor of ``weights``."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        for key in f.keys():
            dtype = _DTYPES.get(f.get_slice(key).get_dtype())
            if dtype is not None:
                return dtype
    return torch.float32


def _build(config, class_name: str, dtype: torch.dtype, attn_implementation: Optional[str]) -> nn.Module:
    import transformers

    model_class = getattr(transformers, class_name, None)
    if model_class is None:
        raise ELASError(f"the checkpoint's architecture {class_name} is not in transformers {transformers.__version__}; "
                        "install the transformers version that wrote it")
    kwargs = {"dtype": dtype}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device("meta"):
        return model_class._from_config(config, **kwargs)


def _load_weights(model: nn.Module, weights: Path, device) -> None:
    from safetensors.torch import load_file

    state = load_file(str(weights), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (_shared_with(model, k) & state.keys())]  # tied: loaded under another name
    if missing or unexpected:
        raise ELASError(f"{weights} does not match the model its configs describe (missing {missing[:3]}, unexpected "
                        f"{unexpected[:3]}{', ...' if len(missing) + len(unexpected) > 6 else ''}); were the files of the "
                        "folder written together?")


def _shared_with(model: nn.Module, name: str) -> set:
    """The state-dict names whose tensor shares ``name``'s storage (tied weights)."""
    tensors = model.state_dict(keep_vars=True)
    ptr = tensors[name].untyped_storage().data_ptr()
    return {k for k, t in tensors.items() if k != name and t.untyped_storage().data_ptr() == ptr}


def _recompute_unsaved(model: nn.Module) -> None:
    """transformers' init for what no file holds (non-persistent buffers such as the rotary
    tables, which ``to_empty`` left without values); every loaded tensor is flagged, so its init
    functions leave them alone."""
    if not hasattr(model, "initialize_weights"):
        return
    for tensor in model.state_dict(keep_vars=True).values():
        tensor._is_hf_initialized = True
    model.initialize_weights()
