"""The GPU benchmark scripts cannot run here; their shared CSV writer can, and every script must parse."""
import csv
import pathlib
import py_compile
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
from _common import device_meta, write_csv  # noqa: E402


def test_write_csv_meta_line_and_every_column(tmp_path):
    path = tmp_path / "sub" / "r.csv"
    rows = [{"a": 1, "ms": 0.123456}, {"a": 2, "extra": "x", "ms": 1.0}]
    write_csv(str(path), rows, device_meta(tool="t t"))
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# date=") and "tool=t_t" in lines[0] and "device=" in lines[0]
    got = list(csv.DictReader(lines[1:]))
    assert list(got[0]) == ["a", "ms", "extra"]
    assert got[0]["ms"] == "0.1235" and got[0]["extra"] == "" and got[1]["extra"] == "x"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_benchmark_script_compiles(script, tmp_path):
    py_compile.compile(str(BENCH / script), cfile=str(tmp_path / "c.pyc"), doraise=True)


def test_cutlass_benchmarks_say_why_they_cannot_run_here():
    from _common import cutlass_shapes_cli
    from elas_compile.kernels import cutlass_ext

    reason = cutlass_ext.unavailable_reason("cuda")
    if reason is None:
        assert cutlass_shapes_cli("b", "doc", [(64, 64, 16)], ["--shapes", "128x64x32"])[1] == [(128, 64, 32)]
    else:
        with pytest.raises(SystemExit, match="bench_x: "):
            cutlass_shapes_cli("bench_x", "doc", [(64, 64, 16)], [])
