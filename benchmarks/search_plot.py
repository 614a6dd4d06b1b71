"""The ``memory`` suite's figure: tokens/s against micro-batch, out-of-memory points marked."""
from __future__ import annotations

import textwrap
from pathlib import Path


def search_plot(rows: list[dict], path: Path, subtitle: str) -> None:
    """tokens/s against micro-batch, a line per variant, a panel per (preset, policy); OOM points
    are crosses on the axis."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    presets = list(dict.fromkeys((r["preset"], r["seq_len"]) for r in rows))
    pols = list(dict.fromkeys(r["checkpointing"] for r in rows))
    colors = {v: f"C{i % 10}" for i, v in enumerate(dict.fromkeys(r["variant"] for r in rows))}
    fig, axes = plt.subplots(len(presets), len(pols), squeeze=False, sharey="row",
                             figsize=(4.2 * len(pols) + 1, 3.4 * len(presets) + 0.8))
    for i, (preset, seq) in enumerate(presets):
        for j, policy in enumerate(pols):
            ax = axes[i][j]
            for variant, color in colors.items():
                mine = sorted((r for r in rows if (r["preset"], r["seq_len"], r["checkpointing"], r["variant"]) ==
                               (preset, seq, policy, variant) and r.get("batch")), key=lambda r: r["batch"])
                ok = [r for r in mine if r["status"] == "ok"]
                oom = [r["batch"] for r in mine if r["status"] == "oom"]
                ax.plot([r["batch"] for r in ok], [r["tokens_per_s"] for r in ok], "o-", color=color, label=variant)
                if oom:  # an empty unclipped line would stretch tight_layout's box to the figure's corner
                    ax.plot(oom, [0] * len(oom), "x", color=color, markersize=9, mew=2, clip_on=False)
            ax.set_title(f"{preset} seq {seq}, checkpointing {policy}", fontsize=9)
            ax.set_xlabel("micro-batch (x: out of memory)", fontsize=8)
            ax.set_ylabel("tokens / s", fontsize=8)
            ax.set_ylim(bottom=0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    title = "training tokens/s against micro-batch (higher is faster)"
    lines = [title, *textwrap.wrap(subtitle, int(fig.get_figwidth() * 13))]
    fig.suptitle("\n".join(lines), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.1 + 0.18 * len(lines)) / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
