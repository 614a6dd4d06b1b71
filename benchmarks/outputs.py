"""What a suite run leaves behind, and where.

    <root>/results/<suite>_<gpu>_<YYYY-MM-DD>[_<tag>]/results.csv   every row, every column
    <root>/results/<suite>_<gpu>_<YYYY-MM-DD>[_<tag>]/meta.json     how, where and with what it ran
    <root>/results/<suite>_<gpu>_<YYYY-MM-DD>[_<tag>]/plot.png      bars per variant (if matplotlib)
    <root>/reports/<suite>_<gpu>_<YYYY-MM-DD>[_<tag>].md            the table, ratios, the command

Three files in the results folder and one report, two folders below ``root`` at most: what a
GPU machine's output folder hands back.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from benchmarks.environment import describe

CPU_LABEL = "CPU: not meaningful"


@dataclass
class SuiteResult:
    """What a suite measured; the entry point writes it out."""

    rows: list[dict]
    columns: list[str]  # results.csv's columns, in order (every row key should be one)
    table_columns: list[str]  # the printed and reported table's columns
    baseline: str  # what the ratio columns compare against, in words
    summary: list[str] = field(default_factory=list)  # the report's ratio lines
    notes: list[str] = field(default_factory=list)  # printed and reported as they are
    backends: dict = field(default_factory=dict)  # ELAS variant -> resolved kernels (meta.json)
    options: dict = field(default_factory=dict)  # the suite's options (meta.json)
    plot: Optional[Callable[[list[dict], Path, str], None]] = None  # (copies of the measured rows, path, subtitle)


def run_name(meta: dict, tag: str | None) -> str:
    return "_".join([meta["suite"], meta["gpu_slug"], meta["date"]] + ([tag] if tag else []))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def text_table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _csv_value(value):
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    extra = [k for r in rows for k in r if k not in columns]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns + list(dict.fromkeys(extra)))
        writer.writeheader()
        writer.writerows({k: _csv_value(v) for k, v in r.items()} for r in rows)


def _plot(result: SuiteResult, path: Path, meta: dict) -> Optional[str]:
    """Writes the plot; returns why not where it cannot."""
    if result.plot is None:
        return "this suite has no plot"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    subtitle = describe(meta) + (f" - {CPU_LABEL}" if meta["device"] == "cpu" else "")
    measured = [dict(r) for r in result.rows if r.get("status") == "ok"]
    if not measured:
        return "no row was measured"
    result.plot(measured, path, subtitle)
    return None


def _report(result: SuiteResult, meta: dict, name: str, files: list[str]) -> str:
    commit = meta["commit"] or "unknown (no git metadata where it ran, and no --commit)"
    if meta["commit"] and meta["dirty"]:
        commit += " with uncommitted changes to tracked files"
    if meta.get("commit_from") == "--commit":
        commit += " (as given by --commit)"
    cpu = meta["device"] == "cpu"
    lines = [f"# {meta['suite']} benchmark: {meta['gpu'] or 'CPU'}, {meta['date']}", "", meta["description"], ""]
    if cpu:
        lines += [f"**{CPU_LABEL}**: a smoke run of the suite on a CPU; no number here says anything "
                  "about GPUs, and no ratios are given.", ""]
    lines += [f"- run at {meta['utc']} (UTC) on {describe(meta)}", f"- commit {commit}",
              f"- options: {json.dumps(result.options)}", ""]
    lines += ["## Results", "", markdown_table(result.rows, result.table_columns), ""]
    if result.summary and not cpu:
        lines += [f"## Ratios against {result.baseline}", "", *[f"- {s}" for s in result.summary], ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    if result.backends:
        lines += ["## ELAS kernels per variant", ""]
        lines += [f"- {v}: {b.get('resolved', '-')} ({b.get('reason', '')})" for v, b in result.backends.items()]
        lines.append("")
    lines += ["## Reproduce", "", "From the repository root:", "", "```", meta["command"], "```", "",
              "## Files", ""]
    lines += [f"- [{f}](../results/{name}/{f})" for f in files]
    return "\n".join(lines) + "\n"


def write_all(result: SuiteResult, meta: dict, root: Path, tag: str | None = None) -> dict:
    """Writes results.csv, meta.json, plot.png and the report; returns their paths by kind."""
    name = run_name(meta, tag)
    folder = root / "results" / name
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "results.csv", result.rows, result.columns)
    no_plot = _plot(result, folder / "plot.png", meta)
    meta = dict(meta, options=result.options, backends=result.backends, baseline=result.baseline,
                plot=None if no_plot else "plot.png", no_plot_reason=no_plot)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, default=str) + "\n", encoding="utf-8")
    files = ["results.csv", "meta.json"] + ([] if no_plot else ["plot.png"])
    reports = root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    report = reports / f"{name}.md"
    report.write_text(_report(result, meta, name, files), encoding="utf-8")
    paths = {"folder": folder, "report": report, "csv": folder / "results.csv", "meta": folder / "meta.json"}
    if not no_plot:
        paths["plot"] = folder / "plot.png"
    return paths
