"""explain(model): what apply() rewrote, with parameter and FLOP counts, the kernels each 2:4 MLP
runs, what was left alone and why, and one block's graph."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn

from elas_compile.accounting import linear_numbers, mlp_numbers
from elas_compile.backends import Resolution, resolve_backend
from elas_compile.lowrank import LowRankLinear
from elas_compile.passes.model.experts import ELASExperts
from elas_compile.passes.model.rewrite_mlp import ELASMLP
from elas_compile.summary import ApplySummary

_COLS = ("params_before", "params_after", "flops_before", "flops_after", "flops_after_24")


@dataclass
class Report:
    """Printable report; ``rows`` holds one dict per rewritten module, ``totals`` their sums,
    ``summary`` what ``apply`` recorded (``model.elas_summary``)."""

    rows: list = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    model_params: int = 0
    graph_code: str = ""
    backends: list = field(default_factory=list)  # (path, Resolution) per 2:4 ELAS MLP or experts
    backend_note: str = ""  # the device and dtype the backends were resolved for
    summary: Optional[ApplySummary] = None

    def __str__(self) -> str:
        head = f"{'module':<40} {'kind':<16} {'params before':>14} {'after':>12} {'FLOPs/token before':>19} {'after':>12} {'after (2:4)':>12}"
        lines = ["elas_compile.explain: rewritten modules", head, "-" * len(head)]
        for row in self.rows + [dict(self.totals, path="TOTAL", kind="")]:
            lines.append(f"{row['path']:<40} {row['kind']:<16} {row['params_before']:>14,} {row['params_after']:>12,} "
                         f"{row['flops_before']:>19,} {row['flops_after']:>12,} {row['flops_after_24']:>12,}")
        lines.append(f"model parameters now: {self.model_params:,} "
                     f"(rewritten modules: {self.totals['params_before']:,} -> {self.totals['params_after']:,})")
        if any(r["kind"].startswith("experts") for r in self.rows):
            lines.append("experts: FLOPs per routed (token, expert) pair; a token routed to k experts costs k times them")
        if self.backends:
            lines += ["", f"2:4 kernels under torch.compile ({self.backend_note}):"]
            lines += [f"{path:<40} {res.backend:<10} {res.reason}" for path, res in self.backends]
        if self.summary is not None:
            lines += [""] + self.summary.lines()
        lines += ["", "graph of the first ELAS MLP (print(module.code)):", self.graph_code.strip()]
        return "\n".join(lines)


def _real_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _resolve(module: nn.Module, dtype: Optional[torch.dtype]) -> Resolution:
    """The backend the compiler pass will choose for this MLP (``elas_compile.backends``), or the
    reference ops with the reason when the MLP's graph is not one the fused op computes."""
    blockers = module.elas_info.get("fused_kernel_blockers", [])
    if blockers:
        return Resolution("reference", "; ".join(blockers))
    weight = module.up_proj.u
    info = module.elas_info
    res = resolve_backend(module.kernels, device=weight.device, dtype=dtype or weight.dtype,
                          width=info["new_intermediate"], rank_in=info["rank"], rank_out=info["rank"],
                          mode=module.elas_backward)
    if info.get("wgrad_dense_fraction") is not None:
        res = res._replace(reason=f"{res.reason}; backward masked-tokens24: weight gradients 2:4 along tokens, the "
                                  f"densest {info['wgrad_dense_fraction']:.0%} of features dense")
    return res


def explain(model: nn.Module, dtype: Optional[torch.dtype] = None) -> Report:
    """Report each rewritten module: parameters and FLOPs per token before/after (from the symbolic
    formulas in elas_compile.accounting, each checked against the module's real parameter count),
    and, per 2:4 MLP, the kernels that ``torch.compile`` will run and why. Those depend on the
    device and dtype the MLP computes in: the weights' by default; pass ``dtype=torch.bfloat16``
    for a model run under bf16 autocast. Then what ``apply`` left alone, and why."""
    report = Report(model_params=_real_count(model), summary=getattr(model, "elas_summary", None))
    for path, module in model.named_modules():
        if isinstance(module, (ELASMLP, ELASExperts)):
            info = module.elas_info
            nums = mlp_numbers(info)
            kind = info["kind"] if isinstance(module, ELASExperts) else f"mlp/{info['kind']}"
            if isinstance(module, ELASExperts):
                kind += f" x{info['num_experts']}"
            else:
                report.graph_code = report.graph_code or module.code
            if info["sparsity"]:
                report.backends.append((path, _resolve(module, dtype)))
                weight = module.up_proj.u
                report.backend_note = f"{weight.device.type}, {dtype or weight.dtype}"
        elif isinstance(module, LowRankLinear) and not any(
            path.startswith(r["path"] + ".") for r in report.rows
        ):
            nums = linear_numbers(module.in_features, module.out_features, module.rank, module.bias is not None)
            kind = "linear"
        else:
            continue
        real = _real_count(module)
        if real != nums["params_after"]:
            raise AssertionError(f"explain: formula gives {nums['params_after']} parameters for '{path}', "
                                 f"the module has {real}: the accounting is out of date")
        report.rows.append(dict(nums, path=path, kind=kind))
    if not report.rows:
        raise ValueError("explain(): the model holds no module rewritten by elas_compile.apply")
    report.totals = {c: sum(r[c] for r in report.rows) for c in _COLS}
    return report
