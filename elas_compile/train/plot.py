"""Loss curves of one or more runs, overlaid in one PNG (matplotlib, Agg backend).

Used by ``train`` (the run's own ``loss.png``, overlaying the ``--compare`` runs) and by the
``elas-compile plot RUN_DIR...`` command.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: F401

from elas_compile.train.errors import TrainError
from elas_compile.train.metrics import read_csv


def run_label(run_dir: Path) -> str:
    """The run's name from its metrics.json (else the folder name)."""
    try:
        cfg = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["config"]
        return str(cfg.get("name") or run_dir.name)
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name


def load_curves(run_dir: Path) -> Tuple[List[Dict], str]:
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise TrainError(f"no metrics.csv in {run_dir}: is it the folder of an `elas-compile train` run?")
    try:
        rows = read_csv(path)
    except (OSError, ValueError, KeyError) as e:
        raise TrainError(f"cannot read {path}: {e}") from None
    return rows, run_label(Path(run_dir))


def smooth(values: Sequence[float], window: int) -> List[float]:
    """Centred moving average (no lag, unlike an EMA); the window shrinks at the ends."""
    half = max(0, window // 2)
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    n = len(values)
    out = []
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def plot_runs(run_dirs: Sequence[Path], out_png: Path, title: Optional[str] = None) -> Path:
    """Plot training loss (raw, faint, and smoothed) and validation loss of every run."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise TrainError("plot needs at least one run folder")
    curves = [load_curves(Path(d)) for d in run_dirs]
    names = [label for _, label in curves]
    curves = [(rows, f"{label} [{Path(d).name}]" if names.count(label) > 1 else label)
              for (rows, label), d in zip(curves, run_dirs)]
    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (rows, label) in enumerate(curves):
        color = colors[i % len(colors)]
        steps = [r["step"] for r in rows if r.get("loss") is not None]
        losses = [r["loss"] for r in rows if r.get("loss") is not None]
        if steps:
            ax_train.plot(steps, losses, color=color, alpha=0.2, linewidth=0.8)
            ax_train.plot(steps, smooth(losses, len(losses) // 25), color=color, label=label, linewidth=1.6)
        ev = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
        if ev:
            ax_val.plot(*zip(*ev), marker="o", markersize=3, color=color, label=label)
    ax_train.set(title="training loss", xlabel="step", ylabel="cross-entropy")
    ax_val.set(title="validation loss", xlabel="step", ylabel="cross-entropy")
    for ax in (ax_train, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
