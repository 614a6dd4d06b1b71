"""The sparsity state of an ELAS FFN module, carried in its state dict (``_extra_state``).

``sparsity_mode`` ("dense" in the warm-up, then "masked" or "ste") decides what the forward
computes, ``elas_backward`` what the schedule switches to: both travel with the weights, so a model
rebuilt with ``apply`` and loaded runs 2:4 exactly when the saved one did. ``kernels`` does not
travel: it asks for what the loading machine can run, and every backend computes the same
function. The state is a fixed-size int64 tensor, not a dict, so safetensors can store it and
torch.distributed.checkpoint loads it in place.
"""
from __future__ import annotations

import torch

from elas_compile.errors import ELASError
from elas_compile.modes import MODES, Mode

FORMAT = 1  # [FORMAT, index of sparsity_mode in MODES, index of elas_backward in MODES]


class SparsityState:
    """Mixin of the modules that hold ``sparsity_mode``, ``elas_backward`` and ``elas_info``
    (``path``, ``sparsity``): ELAS MLPs and routed experts."""

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor([FORMAT, MODES.index(self.sparsity_mode), MODES.index(self.elas_backward)],
                            dtype=torch.int64)

    def set_extra_state(self, state) -> None:
        where = f"ELAS module '{self.elas_info['path']}'"
        values = state.tolist() if isinstance(state, torch.Tensor) else None
        if (not values or len(values) != 3 or values[0] != FORMAT
                or not all(0 <= i < len(MODES) for i in values[1:])):
            raise ELASError(f"{where}: the checkpoint's sparsity state {state!r} is not of format {FORMAT}; it was "
                            "written by another elas_compile version (use that one).")
        mode, backward = MODES[values[1]], MODES[values[2]]
        if mode != "dense" and not self.elas_info["sparsity"]:
            raise ELASError(f"{where}: the checkpoint runs 2:4 sparse ({mode!r}) but this module was built with "
                            "ELASConfig(sparsity=False); rebuild the model with the checkpoint's ELASConfig.")
        # an ELAS MLP's graph has the masked-tokens24 weight-gradient ops only when built for that backward
        graph_lacks_tokens24 = "wgrad_dense_fraction" in self.elas_info and self.elas_info["wgrad_dense_fraction"] is None
        if Mode.MASKED_TOKENS24.value in (mode, backward) and graph_lacks_tokens24:
            raise ELASError(f"{where}: the checkpoint trains with backward='{Mode.MASKED_TOKENS24.value}', whose weight "
                            "gradients need a model built for it; rebuild the model with the checkpoint's ELASConfig "
                            f"(backward='{Mode.MASKED_TOKENS24.value}').")
        self.sparsity_mode, self.elas_backward = mode, backward
