"""kernels/cutlass/pingpong.py: the ping-pong kernel with overlapping epilogues is derived from the
CUTLASS headers by four exact edits, or the build stops naming what it did not find.
(The derived kernel itself runs in tests/kernels/test_cutlass_gpu.py.)"""
from __future__ import annotations

import pytest

from elas_compile.kernels.cutlass import build as cutlass_build, pingpong as P, toolchain as T


def _checkout(tmp_path, text):
    header = tmp_path / P.HEADER
    header.parent.mkdir(parents=True)
    header.write_text(text)
    return tmp_path


def _stock_text() -> str:
    """The parts of the CUTLASS header that the derivation edits, around filler."""
    return ("namespace cutlass::gemm::kernel {\ntemplate <class A>\n" + P._SPECIALIZATION + "\n  mma();\n"
            + P._MMA_WAIT + "        mma();\n        math_wg_order_barrier.arrive();\n"
            + P._EPILOGUE_WAIT + "        store();\n" + P._EPILOGUE_ARRIVE + "};\n}\n")


def test_derive_passes_the_epilogue_turn_on_at_once(tmp_path):
    out = P.write(_checkout(tmp_path / "cutlass", _stock_text()), tmp_path / "gen")
    text = out.read_text()
    assert out.name == P.OUT_NAME and "class PingpongConcurrentEpilogue\n{" in text
    assert "class GemmUniversal<" not in text  # a new class beside the stock kernel, not a specialization
    turn = "math_wg_order_barrier.wait();\n        math_wg_order_barrier.arrive();\n        store();"
    assert turn in text  # the epilogue runs after its turn has been passed on
    assert text.count("math_wg_order_barrier.wait();") == 2 == text.count("math_wg_order_barrier.arrive();")
    prefetch = "collective_epilogue.prefetch(problem_shape_MNKL, blk_shape, blk_coord, warp_group_thread_idx);\n"
    assert prefetch + P._MMA_WAIT in text  # the epilogue's loads start before the MMA's turn


@pytest.mark.parametrize("missing", ["_SPECIALIZATION", "_MMA_WAIT", "_EPILOGUE_WAIT", "_EPILOGUE_ARRIVE"])
def test_derive_names_the_text_it_did_not_find(tmp_path, missing):
    text = _stock_text().replace(getattr(P, missing), "")
    with pytest.raises(RuntimeError, match="not found as expected .*CUTLASS 4.2.0 or 4.7.0"):
        P.derive(_checkout(tmp_path, text))


def test_build_stops_without_the_header(tmp_path):
    (tmp_path / "include" / "cutlass").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="CUTLASS header not found"):
        P.derive(tmp_path)
    found = T.Toolchain(T.Headers(tmp_path, "4.2.0", "test"), T.Nvcc(tmp_path / "no_nvcc", "13.0.88"))
    with pytest.raises(cutlass_build.BuildError, match="CUTLASS header not found"):  # before nvcc runs
        cutlass_build.compile_library(found, "sm_90a", tmp_path / "x.so")


def test_the_installed_header_takes_the_edits():
    """The header of the CUTLASS that the build would use (where one is installed) takes all four edits."""
    headers, reason = T.find_headers()
    if headers is None:
        pytest.skip(reason)
    assert "class PingpongConcurrentEpilogue\n{" in P.derive(headers.root)
