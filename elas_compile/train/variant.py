"""Which model a run trains: ELAS, or one of the two baselines, and how it is rewritten.

- ``elas`` (default): :func:`elas_compile.apply` with 2:4 sparsity after a dense warm-up
  (``--backward masked|ste``).
- ``--baseline lowrank``: the same rewrite with ``ELASConfig(sparsity=False)``: the dense low-rank
  squared-ReLU model.
- ``--baseline full``: the model as built (full-rank SwiGLU), no rewrite.

``--attention`` factorizes the attention projections too; ``--rank`` sets the rank;
``--lowrank-form cola`` puts CoLA's SiLU between the factors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch.nn as nn

from elas_compile.train.errors import TrainError, first_line

BASELINES = ("full", "lowrank")


@dataclass(frozen=True)
class Variant:
    baseline: Optional[str] = None  # None = ELAS
    backward: str = "masked"
    rank: Union[int, float, None] = None  # None = ELASConfig's default
    attention: bool = False
    dense_warmup_steps: int = 0
    dense_final_steps: int = 0  # dense steps at the end of a run (SparsitySchedule's dense_final)
    lowrank_form: str = "plain"  # "cola": U silu(V x) (ELASConfig.lowrank_form)

    @property
    def name(self) -> str:
        if self.baseline == "full":
            return "full"
        base = "lowrank" if self.baseline == "lowrank" else f"elas-{self.backward}"
        return base + ("-cola" if self.lowrank_form == "cola" else "") + ("-attn" if self.attention else "")

    @classmethod
    def from_options(cls, o) -> "Variant":
        """The variant of resolved ``elas-compile train`` options (a run.json from before an
        option existed gets its default)."""
        return cls(baseline=o.get("baseline"), backward=o.get("backward", "masked"), rank=parse_rank(o.get("rank")),
                   attention=bool(o.get("attention")), dense_warmup_steps=int(o.get("dense_warmup_steps", 0)),
                   dense_final_steps=int(o.get("dense_final_steps") or 0),
                   lowrank_form=o.get("lowrank_form") or "plain")

    @property
    def sparse(self) -> bool:
        return self.baseline is None

    def elas_config(self):
        """The :class:`elas_compile.ELASConfig` of this variant (None for the full baseline)."""
        if self.baseline == "full":
            return None
        from elas_compile import ELASConfig

        kwargs = dict(
            sparsity=self.sparse,
            backward=self.backward,
            dense_warmup_steps=self.dense_warmup_steps,
            targets=("ffn", "attention") if self.attention else ("ffn",),
            lowrank_form=self.lowrank_form,
        )
        if self.rank is not None:
            kwargs["rank"] = self.rank
        try:
            return ELASConfig(**kwargs)
        except ValueError as e:
            raise TrainError(first_line(e)) from None


def parse_rank(text: Optional[str]) -> Union[int, float, None]:
    """``--rank``: an int (``64``) or a ratio of the hidden size (``0.25``)."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise TrainError(f"--rank must be an int or a ratio in (0, 1], got {text!r}") from None


def rewrite(model: nn.Module, variant: Variant, total_steps: Optional[int] = None) -> Tuple[nn.Module, object, str]:
    """Apply the variant to ``model`` (in place). Returns ``(model, schedule, report)``: the
    :class:`elas_compile.SparsitySchedule` (None unless sparse) and the ``explain`` report."""
    config = variant.elas_config()
    if config is None:
        return model, None, "baseline full: the model is trained as built (full-rank SwiGLU), no ELAS rewrite"
    import elas_compile

    try:
        model = elas_compile.apply(model, config)
    except ValueError as e:  # ELASError is a ValueError: the rewrite cannot handle this model
        raise TrainError(f"the ELAS rewrite cannot handle this model: {first_line(e)}") from None
    schedule = None
    if variant.sparse:
        schedule = elas_compile.SparsitySchedule(model, warmup_steps=variant.dense_warmup_steps, total_steps=total_steps,
                                                 dense_final=variant.dense_final_steps)
    try:
        report = str(elas_compile.explain(model))
    except Exception as e:  # the report is informative only; never fail a run on it
        report = f"(explain failed: {first_line(e)})"
    return model, schedule, report
