"""What the tests of ``python -m benchmarks`` share: the repository root on ``sys.path`` (the
benchmarks and tools run from there) and the reading of a suite run's files."""
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def suite_outputs(root: Path, suite: str):
    """(results folder, rows of results.csv, meta.json, report text) of the one CPU run under ``root``."""
    (folder,) = (root / "results").iterdir()
    assert folder.name.startswith(f"{suite}_cpu_")
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "plot.png", "results.csv"]
    (report,) = (root / "reports").iterdir()
    assert report.name == f"{folder.name}.md"
    rows = list(csv.DictReader(open(folder / "results.csv")))
    return folder, rows, json.loads((folder / "meta.json").read_text()), report.read_text()
