"""Model presets (LLaMA sizes of the GaLore / CoLA / ELAS papers) and model construction.

``llama-tiny`` is the default: it trains on a 2-core CPU in about a minute. ``llama-60m`` to
``llama-1b`` are the paper sizes (vocabulary from the tokenizer, sequence length 256).
``llama-3b`` has Llama-3.2-3B's dimensions (hidden 3072, 28 layers, 24 heads, intermediate 8192)
with the presets' full multi-head attention and vocabulary: 3.37B parameters, whose fp32 weights,
gradients and AdamW state (16 bytes a parameter, 54 GB) leave little of one 80 GB GPU to the
activations of the full-rank model (the ``memory`` benchmark suite's case where memory binds).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch.nn as nn

from elas_compile.train.errors import TrainError


@dataclass(frozen=True)
class Preset:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    seq_len: int = 256
    vocab_size: int = 32000  # for the locally trained BPE; a --tokenizer decides its own
    batch_size: int = 64
    steps: int = 10_000
    lr: float = 1e-3
    eval_every: int = 1000


PRESETS = {
    "llama-tiny": Preset(128, 352, 2, 4, seq_len=128, vocab_size=2048, batch_size=16, steps=200,
                         lr=3e-3, eval_every=50),
    "llama-60m": Preset(512, 1376, 8, 8, steps=10_000),
    "llama-130m": Preset(768, 2048, 12, 12, steps=20_000),
    "llama-350m": Preset(1024, 2736, 24, 16, steps=60_000),
    "llama-1b": Preset(2048, 5461, 24, 32, steps=100_000),
    "llama-3b": Preset(3072, 8192, 28, 24, steps=100_000),
}
DEFAULT_PRESET = "llama-tiny"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise TrainError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def pad_vocab(n: int, multiple: int = 64) -> int:
    """Round the embedding size up to a multiple of 64 (faster GEMMs; unused rows are harmless)."""
    return -(-n // multiple) * multiple


def preset_config(name: str, vocab_size: int, seq_len: Optional[int] = None):
    """A ``transformers.LlamaConfig`` for a preset."""
    from transformers import LlamaConfig

    p = get_preset(name)
    seq = seq_len or p.seq_len
    return LlamaConfig(
        vocab_size=pad_vocab(vocab_size),
        hidden_size=p.hidden,
        intermediate_size=p.intermediate,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.heads,
        max_position_embeddings=max(seq, 256),
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        use_cache=False,
    )


def load_model_config(spec: str, vocab_size: int, seq_len: int):
    """``--model-config``: a JSON file of a transformers config, or a config name available
    locally (no download). The vocabulary is resized to the tokenizer's."""
    from transformers import AutoConfig, PretrainedConfig

    path = Path(spec)
    try:
        if path.suffix == ".json" or path.is_file():
            if not path.is_file():
                raise TrainError(f"model config file not found: {spec}")
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise TrainError(f"model config {spec} is not valid JSON: {e}") from None
            if not isinstance(data, dict):
                raise TrainError(f"model config {spec} must hold a JSON object")
            model_type = data.pop("model_type", "llama")
            cfg = AutoConfig.for_model(model_type, **data)
        else:
            cfg = AutoConfig.from_pretrained(spec, local_files_only=True)
    except TrainError:
        raise
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainError(f"cannot load model config {spec!r}: {msg}") from None
    assert isinstance(cfg, PretrainedConfig)
    cfg.vocab_size = pad_vocab(vocab_size)
    if getattr(cfg, "max_position_embeddings", seq_len) < seq_len:
        cfg.max_position_embeddings = seq_len
    if hasattr(cfg, "use_cache"):
        cfg.use_cache = False
    return cfg


def build_model(config) -> nn.Module:
    """A randomly initialised causal LM for ``config`` (call ``torch.manual_seed`` first)."""
    from transformers import AutoModelForCausalLM

    try:
        try:
            return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
        except ValueError:  # an architecture without SDPA support
            return AutoModelForCausalLM.from_config(config)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainError(f"cannot build a causal LM from the model config: {msg}") from None


def count_params(model: nn.Module) -> int:
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n
