"""The suites' figure: grouped bars, one panel per (metric, panel value), the machine in the title."""
from __future__ import annotations

import textwrap
from pathlib import Path


def _titles(fig, title: str, subtitle: str) -> None:
    """The title, and the machine line wrapped to the figure's width."""
    fig.suptitle("\n".join([title, *textwrap.wrap(subtitle, int(fig.get_figwidth() * 13))]), fontsize=10)


def _label(x: float) -> str:
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    return f"{x:.3g}"


def bar_plot(rows: list[dict], path: Path, title: str, subtitle: str, *, panel: str, group: str, bar: str,
             metrics: list[tuple[str, str]]) -> None:
    """Bars of ``metrics`` ((row key, axis label) each): a panel per metric and per value of
    ``rows[i][panel]``, a group of bars per value of ``group``, a bar per value of ``bar``.
    Rows without a number for a metric (skipped, failed) leave a gap."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(r[panel] for r in rows))
    metrics = [(k, label) for k, label in metrics if any(isinstance(r.get(k), (int, float)) for r in rows)]
    if not metrics or not panels:
        metrics, panels = metrics or [("", "no numbers")], panels or [""]
    fig, axes = plt.subplots(len(metrics), len(panels), squeeze=False,
                             figsize=(max(6.0, 5.5 * len(panels)), 3.8 * len(metrics)))
    for i, (key, label) in enumerate(metrics):
        for j, p in enumerate(panels):
            ax = axes[i][j]
            mine = [r for r in rows if r[panel] == p]
            groups = list(dict.fromkeys(r[group] for r in mine))
            bars = list(dict.fromkeys(r[bar] for r in mine))
            width = 0.8 / max(len(bars), 1)
            for k, b in enumerate(bars):
                vals = [next((r.get(key) for r in mine if r[group] == g and r[bar] == b), None) for g in groups]
                vals = [v if isinstance(v, (int, float)) else 0.0 for v in vals]
                drawn = ax.bar([x + k * width for x in range(len(groups))], vals, width, label=str(b))
                ax.bar_label(drawn, labels=[_label(v) if v else "" for v in vals], fontsize=6, rotation=90)
            ax.set_xticks([x + width * (len(bars) - 1) / 2 for x in range(len(groups))], groups,
                          rotation=30, ha="right", fontsize=7)
            ax.set_ylabel(label, fontsize=8)
            ax.set_title(str(p), fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            ax.margins(y=0.15)
            if len(bars) > 1:
                ax.legend(fontsize=6)
    _titles(fig, title, subtitle)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def row_bars(rows: list[dict], path: Path, title: str, subtitle: str, *, panel: str, label: str, value: str,
             color: str, xlabel: str) -> None:
    """One horizontal bar per row (``rows[i][label]``, length ``rows[i][value]``), a panel per value
    of ``panel``, one colour per value of ``color``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(r[panel] for r in rows))
    colors = {c: f"C{i % 10}" for i, c in enumerate(dict.fromkeys(r[color] for r in rows))}
    height = max(len([r for r in rows if r[panel] == p]) for p in panels)
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, figsize=(10, (1.0 + 0.3 * height) * len(panels) + 0.6))
    for ax, p in zip(axes[:, 0], panels):
        mine = [r for r in rows if r[panel] == p][::-1]
        drawn = ax.barh(range(len(mine)), [r[value] for r in mine], color=[colors[r[color]] for r in mine])
        ax.bar_label(drawn, labels=[_label(r[value]) for r in mine], fontsize=6, padding=2)
        ax.set_yticks(range(len(mine)), [r[label] for r in mine], fontsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(str(p), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15)
    _titles(fig, title, subtitle)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
