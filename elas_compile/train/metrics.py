"""Run metrics: ``metrics.csv`` (one row per step, appended as the run goes) and
``metrics.json`` (the run's options, a summary and every row), both in the run folder."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from elas_compile.data import atomic_write_text

COLUMNS = ["step", "tokens", "lr", "loss", "grad_norm", "tokens_per_s", "sparse_active",
           "val_loss", "val_ppl", "elapsed_s"]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)  # full precision: resumed runs are compared bit for bit
    return str(v)


def _parse(col: str, s: str) -> Any:
    if s == "":
        return None
    if col in ("step", "tokens"):
        return int(s)
    if col == "sparse_active":
        return s == "1"
    return float(s)


def read_csv(path: Path) -> List[Dict[str, Any]]:
    """The rows of a ``metrics.csv`` (typed; empty cells are None)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse(k, v or "") for k, v in row.items() if k in COLUMNS} for row in csv.DictReader(f)]


class MetricsLog:
    """Collects rows; appends each to the CSV at once, rewrites the JSON on :meth:`flush`."""

    def __init__(self, run_dir: Path, config: Dict[str, Any], rows: Optional[List[Dict[str, Any]]] = None):
        self.run_dir = run_dir
        self.config = config
        self.rows: List[Dict[str, Any]] = list(rows or [])
        self.summary: Dict[str, Any] = {}
        self.csv_path = run_dir / "metrics.csv"
        self.json_path = run_dir / "metrics.json"
        # (Re)write the CSV with the rows kept (a resumed run drops rows past its checkpoint).
        atomic_write_text(self.csv_path, ",".join(COLUMNS) + "\n"
                          + "".join(self._line(r) for r in self.rows))

    @classmethod
    def resume(cls, run_dir: Path, config: Dict[str, Any], up_to_step: int) -> "MetricsLog":
        path = run_dir / "metrics.csv"
        rows = [r for r in read_csv(path) if r["step"] <= up_to_step] if path.is_file() else []
        return cls(run_dir, config, rows)

    @staticmethod
    def _line(row: Dict[str, Any]) -> str:
        return ",".join(_cell(row.get(c)) for c in COLUMNS) + "\n"

    def log(self, row: Dict[str, Any]) -> None:
        """Record one step (with ``val_loss`` on evaluation steps; ``val_ppl`` is derived)."""
        if row.get("val_loss") is not None:
            row["val_ppl"] = math.exp(min(row["val_loss"], 50.0))
        self.rows.append(row)
        with open(self.csv_path, "a", encoding="utf-8") as f:
            f.write(self._line(row))

    def last_eval(self) -> Optional[Dict[str, Any]]:
        for row in reversed(self.rows):
            if row.get("val_loss") is not None:
                return row
        return None

    def flush(self, **summary: Any) -> None:
        self.summary.update(summary)
        last = self.rows[-1] if self.rows else {}
        ev = self.last_eval() or {}
        self.summary.update(
            steps=last.get("step", 0), tokens=last.get("tokens", 0), final_loss=last.get("loss"),
            final_val_loss=ev.get("val_loss"), final_val_ppl=ev.get("val_ppl"),
        )
        doc = {"config": self.config, "summary": self.summary, "rows": self.rows}
        atomic_write_text(self.json_path, json.dumps(doc, indent=1))
