"""The model presets of ``elas-compile train`` / ``bench``: sizes checked by counting the
parameters of the model each builds (on the meta device: no memory, no init)."""
import pytest
import torch

from elas_compile.train.presets import build_model, count_params, get_preset, preset_config


def _params(name: str) -> int:
    with torch.device("meta"):
        return count_params(build_model(preset_config(name, get_preset(name).vocab_size)))


def _llama_params(hidden: int, intermediate: int, layers: int, vocab: int) -> int:
    """Embedding and LM head (untied), per layer 4 attention projections (full multi-head), 3 MLP
    matrices and 2 norms, and the final norm."""
    return 2 * vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden) + hidden


@pytest.mark.parametrize("name, billions", [("llama-1b", 1.34), ("llama-3b", 3.37)])
def test_preset_parameter_counts(name, billions):
    p = get_preset(name)
    assert _params(name) == _llama_params(p.hidden, p.intermediate, p.layers, p.vocab_size)
    assert round(_params(name) / 1e9, 2) == billions


def test_llama_3b_has_llama_proportions():
    p = get_preset("llama-3b")
    assert (p.hidden, p.intermediate, p.layers, p.heads) == (3072, 8192, 28, 24)  # Llama-3.2-3B's dimensions
    assert p.hidden // p.heads == 128  # Llama-3.2-3B's head size
