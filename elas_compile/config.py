"""ELASConfig: every knob of the ELAS rewrite, in one frozen dataclass."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

from elas_compile.backends import KERNEL_CHOICES
from elas_compile.errors import ConfigError
from elas_compile.modes import DEFAULT_WGRAD_DENSE_FRACTION, SPARSE_MODES, Mode

LOWRANK_FORMS = ("plain", "cola")
INITS = ("random", "svd")
BACKWARD_MODES = SPARSE_MODES
TARGETS = ("ffn", "attention")
EXPERTS = ("rewrite", "keep")
GATED_KINDS = ("gated", "fused")  # MLP kinds whose gate the rewrite drops
GATED_WIDTH_MULTIPLIER = 1.5


@dataclass(frozen=True)
class ELASConfig:
    """How :func:`elas_compile.apply` rewrites a model.

    The defaults follow the ELAS paper (2026): FFN linears of rank 1/4 of the hidden size as a
    plain product U·V, the gated MLP replaced by a squared-ReLU MLP 1.5x as wide, 2:4 activation
    sparsity after 1000 dense warm-up steps. A bad value raises :class:`ConfigError`.
    """

    rank: Union[int, float] = 0.25
    """Rank r of every factorized linear. An int is used as is; a float in (0, 1] is a ratio
    of the model's hidden size (the MLP's input features), rounded to a multiple of 16 (at least 16).
    ``apply`` refuses a rank at or above min(in, out) of an MLP factor (that is no low-rank
    factorization) and skips, with the reason in its summary, an attention projection whose factors
    would not be smaller than its weight (r·(in + out) >= in·out, e.g. GQA's k/v projections)."""

    lowrank_form: str = "plain"
    """``"plain"``: W = U·V, the output is U(V x) (ELAS, LORO). ``"cola"``: U(σ(V x)) with σ =
    SiLU between the factors (CoLA, 2025)."""

    ffn_width_multiplier: Optional[float] = None
    """New intermediate width = round(multiplier x original width) to a multiple of
    ``ffn_width_multiple``. None (the default) keeps each MLP's dense parameter count: 1.5 for gated
    MLPs (three d x F matrices become two d x 1.5F ones when the gate is dropped) and 1.0 for plain
    ones (two matrices stay two). A number applies to every MLP and expert."""

    ffn_width_multiple: int = 128
    """The new intermediate width is rounded to a multiple of this (128 suits the sparse GEMM)."""

    init: str = "random"
    """``"random"`` for pre-training from scratch; ``"svd"`` initialises U and V from the truncated
    SVD of the existing weights where shapes allow (rows beyond the original width stay random)."""

    sparsity: bool = True
    """Make the squared-ReLU output 2:4 sparse (after the warm-up). False gives the dense low-rank
    ReLU² model (the paper's baseline)."""

    backward: str = "masked"
    """Gradient of the 2:4 step. ``"masked"``: exact gradient of the sparsified function (zero at
    pruned positions). ``"ste"``: straight-through, the gradient reaches every position (ELAS).
    ``"masked-tokens24"``: ``masked`` with approximate weight gradients of the FFN middle: the two
    products that reduce over tokens (the down projection's V factor, gᵀ·S, and the up
    projection's U factor, dyᵀ·h) take Sᵀ and dyᵀ made 2:4 along tokens (the two largest of every
    4 consecutive tokens; exact where a group holds at most 2 nonzeros), the densest feature
    columns (``wgrad_dense_fraction``) dense; on a GPU the 2:4 part runs on sparse tensor cores.
    It changes the gradient (docs/kernels.md has the measured error); off by default."""

    wgrad_dense_fraction: float = DEFAULT_WGRAD_DENSE_FRACTION
    """With ``backward="masked-tokens24"``: the share of feature columns (those whose 2:4 along
    tokens would drop the most nonzeros, chosen per step) whose weight gradients stay dense. 0
    makes every column 2:4, 1 gives the exact ``masked`` gradients. Part of the compiled graph."""

    dense_warmup_steps: int = 1000
    """Optimizer steps run dense before 2:4 sparsity starts (the ELAS authors' 60M model diverged
    without a warm-up). Driven by :class:`elas_compile.SparsitySchedule`."""

    targets: Tuple[str, ...] = ("ffn",)
    """What to rewrite: ``"ffn"`` (the MLPs) and optionally ``"attention"`` (every other linear in
    the blocks that hold a rewritten MLP, i.e. the attention projections, made low rank)."""

    experts: str = "rewrite"
    """Routed experts stored as stacked parameters (transformers 5's ``experts.gate_up_proj`` /
    ``experts.down_proj``): ``"rewrite"`` makes them low-rank ReLU² experts with 2:4 activations
    like every other MLP (the 2:4 pattern runs per token along the expert's width, so it holds for
    the tokens routed to each expert); ``"keep"`` leaves them as they are, and ``apply``'s summary
    says so. The default rewrites: the routed experts hold most of an MoE model's FFN parameters,
    and models whose every FFN is routed (Mixtral, OLMoE) would otherwise have nothing rewritten.
    Experts run the reference ops (no sparse GEMM): docs/sharp_edges.md."""

    kernels: str = "auto"
    """Which kernels compute the 2:4 FFN under ``torch.compile`` (``elas_compile.backends``):
    ``"auto"`` the fastest that can run (CUTLASS on Hopper when its library is built, else Triton
    + cuSPARSELt on NVIDIA GPUs, else the reference ops); ``"cutlass"``, ``"triton"`` or
    ``"reference"`` ask for one (a backend that cannot run falls back with one warning saying
    why). The choice is resolved when a graph is compiled and is part of the compiled graph, so
    compile caches never replay another choice. ``explain(model)`` shows it per MLP."""

    def __post_init__(self) -> None:
        def bad(field: str, value, allowed: str) -> ConfigError:
            return ConfigError(f"ELASConfig.{field}={value!r} is invalid: {allowed}")

        if isinstance(self.rank, bool) or not isinstance(self.rank, (int, float)):
            raise bad("rank", self.rank, "use an int (the rank) or a float ratio in (0, 1]")
        if isinstance(self.rank, int) and self.rank < 1:
            raise bad("rank", self.rank, "an int rank must be >= 1")
        if isinstance(self.rank, float) and not 0 < self.rank <= 1:
            raise bad("rank", self.rank, "a float rank is a ratio of the hidden size in (0, 1]")
        if self.lowrank_form not in LOWRANK_FORMS:
            raise bad("lowrank_form", self.lowrank_form, f"choose one of {LOWRANK_FORMS}")
        if self.init not in INITS:
            raise bad("init", self.init, f"choose one of {INITS}")
        if self.kernels not in KERNEL_CHOICES:
            raise bad("kernels", self.kernels, f"choose one of {KERNEL_CHOICES}")
        if self.backward not in BACKWARD_MODES:
            raise bad("backward", self.backward, f"choose one of {BACKWARD_MODES}")
        fraction = self.wgrad_dense_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise bad("wgrad_dense_fraction", fraction, "a share of feature columns in [0, 1] (0.05: the densest 5% "
                      "of the columns get dense weight gradients)")
        if fraction != DEFAULT_WGRAD_DENSE_FRACTION and self.backward != Mode.MASKED_TOKENS24.value:
            raise bad("wgrad_dense_fraction", fraction, f"it acts with backward='{Mode.MASKED_TOKENS24.value}' only "
                      f"(this config's backward is {self.backward!r}): set that backward or leave the default")
        if self.ffn_width_multiplier is not None and not self.ffn_width_multiplier > 0:
            raise bad("ffn_width_multiplier", self.ffn_width_multiplier, "must be > 0 (or None: by MLP kind)")
        if self.experts not in EXPERTS:
            raise bad("experts", self.experts, f"choose one of {EXPERTS}")
        if self.ffn_width_multiple < 1:
            raise bad("ffn_width_multiple", self.ffn_width_multiple, "must be >= 1")
        if self.dense_warmup_steps < 0:
            raise bad("dense_warmup_steps", self.dense_warmup_steps, "must be >= 0")
        targets = tuple(self.targets)
        if not targets or any(t not in TARGETS for t in targets) or "ffn" not in targets:
            raise bad("targets", self.targets, f"a tuple of {TARGETS} that includes 'ffn'")
        object.__setattr__(self, "targets", targets)

    def rank_for(self, hidden: int) -> int:
        """The rank used for a layer whose model hidden size is ``hidden``."""
        if isinstance(self.rank, int):
            return self.rank
        return max(16, int(round(self.rank * hidden / 16)) * 16)

    def width_multiplier(self, kind: str) -> float:
        """The width multiplier of an MLP of ``kind`` ("gated", "fused" or "plain")."""
        if self.ffn_width_multiplier is not None:
            return self.ffn_width_multiplier
        return GATED_WIDTH_MULTIPLIER if kind in GATED_KINDS else 1.0

    def ffn_width(self, original: int, kind: str = "gated") -> int:
        """The new intermediate width for an MLP of ``kind`` whose original width is ``original``
        (a SwiGLU-style gated MLP unless ``kind`` says otherwise)."""
        m = self.ffn_width_multiple
        return max(m, int(round(self.width_multiplier(kind) * original / m)) * m)

    @property
    def initial_mode(self) -> str:
        """The sparsity mode of a freshly rewritten MLP: dense during the warm-up."""
        if not self.sparsity or self.dense_warmup_steps > 0:
            return "dense"
        return self.backward
