"""What the ``quality`` suite concludes from its rows: the targets of the issues and whether each was
met, which backward the numbers favour, and the curves (validation perplexity against tokens)."""
from __future__ import annotations

from pathlib import Path

TARGET_TOKENS = 100_000_000  # the budget issues 21 and 24 state their targets for
LOWRANK_TARGET = 1.01  # issue 24: ELAS within 1% of dense low rank
FULL_TARGET, FULL_TARGET_PRESET = 1.05, "llama-130m"  # issue 24: at 130m, within 5% of full rank
TOKENS24_TARGET, TOKENS24_PRESET = 1.005, "llama-60m"  # issue 21: masked-tokens24 within 0.5% of masked, at 60m


def lowrank_of(variant: str) -> str:
    """The dense low-rank run a variant is held to: the same factorization."""
    return "lowrank-attn" if variant.endswith("-attn") else "lowrank"


def _judge(issue: str, target: str, row: dict, base: dict, limit: float, caveat: str) -> str:
    ratio = row["final_val_ppl"] / base["final_val_ppl"]
    met = "met" if ratio <= limit else "not met"
    return (f"{issue}, {target}: {row['preset']} {row['variant']} {row['final_val_ppl']:.3f} vs {base['variant']} "
            f"{base['final_val_ppl']:.3f} = {ratio:.4f}x (target <= {limit}x): {met}{caveat}")


def verdicts(rows: list) -> list:
    """One line per target and finished ELAS run, then per preset the backward the numbers favour."""
    ok = {(r["preset"], r["variant"]): r for r in rows if r["status"] == "ok"}
    lines = []
    for (preset, variant), row in ok.items():
        if not variant.startswith("elas-"):
            continue
        caveat = "" if row["tokens"] >= TARGET_TOKENS else (
            f" ({row['tokens']:,} tokens, below the {TARGET_TOKENS:,} the issues ask: indicative only)")
        if (preset, lowrank_of(variant)) in ok:
            lines.append(_judge("issue 24", "ELAS within 1% of dense low rank", row, ok[(preset, lowrank_of(variant))],
                                LOWRANK_TARGET, caveat))
        if (preset, "full") in ok:
            where = caveat if preset == FULL_TARGET_PRESET else f" (the target is stated for {FULL_TARGET_PRESET})"
            lines.append(_judge("issue 24", f"at {FULL_TARGET_PRESET} ELAS within 5% of full rank", row,
                                ok[(preset, "full")], FULL_TARGET, where))
        masked = variant.replace("-tokens24", "")
        if masked != variant and (preset, masked) in ok:
            where = caveat if preset == TOKENS24_PRESET else f" (the target is stated for {TOKENS24_PRESET})"
            lines.append(_judge("issue 21", "masked-tokens24 within 0.5% of masked", row, ok[(preset, masked)],
                                TOKENS24_TARGET, where))
    return lines + favoured(ok)


def favoured(ok: dict) -> list:
    """Per preset and factorization, the ELAS backward with the lowest final validation perplexity."""
    groups: dict = {}
    for (preset, variant), row in ok.items():
        if variant.startswith("elas-"):
            groups.setdefault((preset, variant.endswith("-attn")), []).append(row)
    lines = []
    for (preset, _), group in groups.items():
        if len(group) < 2:
            continue
        group.sort(key=lambda r: r["final_val_ppl"])
        best = group[0]
        others = ", ".join(f"{r['variant']} {r['final_val_ppl']:.3f} "
                           f"(+{100 * (r['final_val_ppl'] / best['final_val_ppl'] - 1):.2f}%)" for r in group[1:])
        lines.append(f"{preset}: the numbers favour {best['variant']} (final validation perplexity "
                     f"{best['final_val_ppl']:.3f}; {others}; one seed, quality only: speed is the step suite's)")
    return lines


def _curve(root: Path, row: dict) -> list:
    """(tokens, validation perplexity) of every validation of the row's run."""
    from elas_compile.train.metrics import read_csv

    return [(r["tokens"], r["val_ppl"]) for r in read_csv(root / row["run_dir"] / "metrics.csv")
            if r.get("val_ppl") is not None]


def plot_curves(rows: list, path: Path, subtitle: str, *, root: Path) -> None:
    """Per preset: validation perplexity against training tokens, a line per variant (log scale),
    and below it the perplexity over the dense low-rank run's at the same validation."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from benchmarks.plot import _titles

    presets = list(dict.fromkeys(r["preset"] for r in rows))
    fig, axes = plt.subplots(2, len(presets), squeeze=False, figsize=(6.5 * len(presets), 8), sharex="col")
    for j, preset in enumerate(presets):
        mine = [r for r in rows if r["preset"] == preset]
        curves = {r["variant"]: _curve(root, r) for r in mine}
        top, bottom = axes[0][j], axes[1][j]
        for k, (variant, points) in enumerate(curves.items()):
            color = f"C{k % 10}"
            top.plot(*zip(*points), marker="o", markersize=3, color=color, label=variant)
            base = dict(curves.get(lowrank_of(variant), []))
            ratio = [(t, p / base[t]) for t, p in points if t in base]
            if ratio and variant != lowrank_of(variant):
                bottom.plot(*zip(*ratio), marker="o", markersize=3, color=color, label=variant)
        top.set_yscale("log")
        top.set(title=preset, ylabel="validation perplexity")
        bottom.axhline(1.0, color="grey", linewidth=0.8)
        bottom.set(xlabel="training tokens", ylabel="perplexity / dense low rank's")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    _titles(fig, "validation perplexity (same seed and data order)", subtitle)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
