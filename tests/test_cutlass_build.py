"""CPU checks of how the CUTLASS kernels get built (kernels/cutlass/toolchain.py, build.py, and the
loading part of ops.py): what is found and its version, the cache key, the lock that makes
concurrent processes build once, the first use that builds once per process, and the reasons
given where the kernels cannot be had. The real nvcc build is the one `slow` test at the end."""
from __future__ import annotations

import ctypes
import fcntl
import threading
from pathlib import Path

import pytest
import torch

from elas_compile.diagnostics import reset_warnings
from elas_compile.kernels.cutlass import build as B, ops as O, toolchain as T


def fake_cutlass(root: Path, version: str = "4.2.0") -> Path:
    """A CUTLASS source tree with the files the toolchain looks at (no real header)."""
    (root / "include" / "cutlass").mkdir(parents=True)
    (root / "include" / "cutlass" / "cutlass.h").write_text("")
    (root / "tools" / "util" / "include" / "cutlass" / "util").mkdir(parents=True)
    major, minor, patch = version.split(".")
    (root / "include" / "cutlass" / "version.h").write_text(
        f"#define CUTLASS_MAJOR {major}\n#define CUTLASS_MINOR {minor}\n#define CUTLASS_PATCH {patch} \n")
    return root


def tools(version="4.2.0", nvcc="13.0.88") -> T.Toolchain:
    return T.Toolchain(T.Headers(Path("/cutlass"), version, "test"), T.Nvcc(Path("/cuda/bin/nvcc"), nvcc))


@pytest.fixture
def no_cutlass_package(monkeypatch):
    """As if nvidia-cutlass were not installed (it may be, where the GPU tests run)."""
    real = T.importlib.util.find_spec
    monkeypatch.setattr(T.importlib.util, "find_spec", lambda name: None if name == "cutlass_library" else real(name))
    monkeypatch.delenv("CUTLASS_PATH", raising=False)


@pytest.fixture
def fresh_load(monkeypatch):
    """ops' once-per-process load forgotten, before and after; an sm_90 GPU pretended."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.delenv(O.LIB_ENV, raising=False)
    O._load.cache_clear()
    reset_warnings()
    yield
    O._load.cache_clear()
    reset_warnings()


def test_version_from_the_headers(tmp_path):
    assert T.headers_version(fake_cutlass(tmp_path / "a", "4.7.0")) == "4.7.0"
    assert T.headers_version(tmp_path / "empty") == "unknown"


def test_no_headers_names_the_extra(no_cutlass_package):
    headers, reason = T.find_headers()
    assert headers is None and T.INSTALL_HINT in reason


def test_headers_from_cutlass_path_else_the_package(tmp_path, monkeypatch):
    package = tmp_path / "site" / "cutlass_library"
    fake_cutlass(package / "source", "4.2.0")
    (package / "__init__.py").write_text("raise ImportError('the toolchain must not import the package')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("CUTLASS_PATH", raising=False)
    headers, _ = T.find_headers()
    assert (headers.root, headers.version, headers.origin) == (package / "source", "4.2.0", "the nvidia-cutlass package")
    monkeypatch.setenv("CUTLASS_PATH", str(fake_cutlass(tmp_path / "checkout", "4.7.0")))
    assert T.find_headers()[0].version == "4.7.0"  # $CUTLASS_PATH first
    monkeypatch.setenv("CUTLASS_PATH", str(tmp_path / "nothing"))
    headers, reason = T.find_headers()
    assert headers is None and "holds no CUTLASS source tree" in reason


def test_an_unchecked_version_is_refused_naming_the_checked_ones(tmp_path):
    assert T.version_problem(T.Headers(tmp_path, "4.2.0", "test")) is None
    reason = T.version_problem(T.Headers(tmp_path, "4.3.0", "test"))
    assert "CUTLASS 4.3.0" in reason and "4.2.0 and 4.7.0" in reason and T.INSTALL_HINT in reason
    assert "CUTLASS unknown" in T.version_problem(T.Headers(tmp_path, "unknown", "test"))


def test_nvcc_from_cuda_home_with_its_version(tmp_path, monkeypatch):
    nvcc = tmp_path / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.8, V12.8.93'\n")
    nvcc.chmod(0o755)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    assert T.find_nvcc() == (T.Nvcc(nvcc, "12.8.93"), None)
    monkeypatch.setattr(T, "_nvcc_candidates", lambda: [])
    assert T.find_nvcc()[0] is None and "nvcc is not installed" in T.find_nvcc()[1]


def test_toolchain_names_everything_missing(monkeypatch, no_cutlass_package):
    monkeypatch.setattr(T, "_nvcc_candidates", lambda: [])
    found, reason = T.find_toolchain()
    assert found is None and T.INSTALL_HINT in reason and "nvcc is not installed" in reason


def test_driver_older_than_nvcc():
    nvcc = T.Nvcc(Path("/cuda/bin/nvcc"), "13.0.88")
    assert "this driver supports CUDA 12.8" in T.driver_problem(nvcc, (12, 8))
    assert T.driver_problem(nvcc, (13, 0)) is None and T.driver_problem(nvcc, None) is None


def test_cache_key_changes_with_every_component(tmp_path, monkeypatch):
    base = B.library_key("4.2.0", "13.0.88", "sm_90a")
    others = {B.library_key("4.7.0", "13.0.88", "sm_90a"), B.library_key("4.2.0", "12.8.93", "sm_90a"),
              B.library_key("4.2.0", "13.0.88", "sm_100a")}
    assert len(others) == 3 and base not in others
    path = B.default_library_path(tools(), "sm_90a")
    assert path.name == f"libelas_cutlass-sm_90a-{base}.so" and path.parent == B.cache_dir()
    for src in B.SOURCE_DIR.glob("*.cu*"):  # a copy of the sources with one edit
        (tmp_path / src.name).write_bytes(src.read_bytes())
    (tmp_path / B.SOURCES[0]).write_text((tmp_path / B.SOURCES[0]).read_text() + "\n// edited\n")
    monkeypatch.setattr(B, "SOURCE_DIR", tmp_path)
    assert B.library_key("4.2.0", "13.0.88", "sm_90a") != base


class FakeCompiler:
    """Stands for compile_library: counts its calls, writes a file, can wait for a signal or fail."""

    def __init__(self, wait_for: threading.Event | None = None, fail: bool = False):
        self.calls, self.wait_for, self.fail = 0, wait_for, fail

    def __call__(self, tools, arch, out):
        self.calls += 1
        if self.wait_for is not None:
            assert self.wait_for.wait(timeout=60), "the second builder never reached the lock"
        if self.fail:
            raise B.BuildError("nvcc failed to build the CUTLASS kernels", "error: line 1\nerror: the tail")
        out.write_text("library")


def second_builder_waits(monkeypatch):
    """An event set when a thread other than the main one takes the build lock (fcntl.flock)."""
    waiting, flock = threading.Event(), fcntl.flock

    def flock_and_signal(f, op):
        if threading.current_thread() is not threading.main_thread():
            waiting.set()
        return flock(f, op)

    monkeypatch.setattr(fcntl, "flock", flock_and_signal)
    return waiting


def test_lock_makes_the_second_builder_wait_and_load(tmp_path, monkeypatch, capsys):
    compiler = FakeCompiler(wait_for=second_builder_waits(monkeypatch))
    out, results = tmp_path / "lib.so", {}
    second = threading.Thread(target=lambda: results.update(second=B.build(tools(), "sm_90a", out)))

    def start_second_then_compile(*args):
        second.start()
        compiler(*args)

    monkeypatch.setattr(B, "compile_library", start_second_then_compile)
    path, seconds = B.build(tools(), "sm_90a", out)
    second.join()
    assert compiler.calls == 1 and out.read_text() == "library"
    assert results["second"] == (path, None) and seconds is not None  # the second one waited and built nothing
    err = capsys.readouterr().err
    assert err.count("building the CUTLASS kernels for sm_90a") == 1 and "built the CUTLASS kernels in" in err


def test_a_failure_seen_while_waiting_is_not_retried(tmp_path, monkeypatch):
    compiler = FakeCompiler(wait_for=second_builder_waits(monkeypatch), fail=True)
    out, errors = tmp_path / "lib.so", {}

    def build_and_keep_error(name):
        try:
            B.build(tools(), "sm_90a", out)
        except B.BuildError as e:
            errors[name] = e

    second = threading.Thread(target=build_and_keep_error, args=("second",))

    def start_second_then_compile(*args):
        second.start()
        compiler(*args)

    monkeypatch.setattr(B, "compile_library", start_second_then_compile)
    build_and_keep_error("first")
    second.join()
    assert compiler.calls == 1 and "the tail" in errors["first"].output
    assert "while this one waited" in str(errors["second"]) and "the tail" in Path(str(errors["second"]).split()[-1]).read_text()
    monkeypatch.setattr(B, "compile_library", FakeCompiler())
    assert B.build(tools(), "sm_90a", out)[1] is not None  # a later process tries again


def test_first_use_builds_once_per_process(monkeypatch, capsys, fresh_load):
    calls = []

    def failing_build(found, arch, out=None):
        calls.append(arch)
        raise B.BuildError("nvcc 13.0.88 failed to build the CUTLASS kernels", "error: the compiler's last words")

    monkeypatch.setattr(T, "find_toolchain", lambda: (tools(), None))
    monkeypatch.setattr(T, "driver_cuda_version", lambda: (13, 0))
    monkeypatch.setattr(B, "build", failing_build)
    with pytest.warns(UserWarning, match="cannot run on this sm_90 GPU.*failed to build"):
        first = O.unavailable_reason("cuda")
    assert O.unavailable_reason("cuda") == first and not O.available("cuda") and O.library() is None
    assert calls == ["sm_90a"] and capsys.readouterr().err.count("the compiler's last words") == 1


def test_missing_toolchain_names_the_extra_once(monkeypatch, fresh_load, no_cutlass_package):
    monkeypatch.setattr(T, "_nvcc_candidates", lambda: [])
    monkeypatch.setattr(B, "build", lambda *a, **k: pytest.fail("nothing to build with"))
    with pytest.warns(UserWarning) as warned:
        reason = O.unavailable_reason("cuda")
        O.unavailable_reason("cuda")
    assert T.INSTALL_HINT in reason and "nvcc is not installed" in reason
    assert len(warned) == 1 and T.INSTALL_HINT in str(warned[0].message)


def test_a_prebuilt_library_is_loaded_without_a_toolchain(tmp_path, monkeypatch, fresh_load):
    monkeypatch.setattr(T, "find_toolchain", lambda: pytest.fail("ELAS_CUTLASS_LIB needs no toolchain"))
    monkeypatch.setenv(O.LIB_ENV, str(tmp_path / "missing.so"))
    with pytest.warns(UserWarning):
        assert "is not a file" in O.unavailable_reason("cuda")
    O._load.cache_clear()
    (tmp_path / "not_a_library.so").write_text("")
    monkeypatch.setenv(O.LIB_ENV, str(tmp_path / "not_a_library.so"))
    with pytest.warns(UserWarning):
        assert "does not load" in O.unavailable_reason("cuda")


def test_other_devices_build_nothing(monkeypatch, fresh_load):
    monkeypatch.setattr(T, "find_toolchain", lambda: pytest.fail("no build for a device the kernels do not support"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert O.unavailable_reason("cuda") == "built for sm_90 (Hopper), this GPU is sm_80"
    assert O.unavailable_reason("cpu") == "not a CUDA device"


def test_build_kernels_reports_what_it_found(tmp_path, monkeypatch, capsys):
    from elas_compile.cli import main

    headers = T.Headers(fake_cutlass(tmp_path / "cutlass"), "4.2.0", "test")
    monkeypatch.setattr(T, "find_headers", lambda given=None: (headers, None))
    monkeypatch.setattr(T, "find_nvcc", lambda: (T.Nvcc(Path("/cuda/bin/nvcc"), "13.0.88"), None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(B, "build", lambda found, arch, out=None: (Path(out), 41.5))
    assert main(["build-kernels", "--out", str(tmp_path / "lib.so")]) == 0
    out = capsys.readouterr().out
    for line in (f"{headers.root} (4.2.0, test)", "/cuda/bin/nvcc (13.0.88)", "GPU:             no GPU",
                 "arch:            sm_90a", f"{tmp_path / 'lib.so'} (built in 41.5 s)"):
        assert line in out
    monkeypatch.setattr(T, "find_nvcc", lambda: (None, "nvcc is not installed (...)"))
    assert main(["build-kernels"]) == 1
    captured = capsys.readouterr()
    assert "nvcc:            not found" in captured.out and "nvcc is not installed" in captured.err


@pytest.mark.slow
def test_nvcc_builds_the_library(tmp_path):
    """The real build (about a minute on 2 cores); skipped where nvcc or the headers are missing."""
    found, reason = T.find_toolchain()
    if found is None:
        pytest.skip(reason)
    path, seconds = B.build(found, "sm_90a", tmp_path / "lib.so")
    assert seconds is not None and ctypes.CDLL(str(path)).elas_cutlass_abi() == O.ABI


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() != O.CAPABILITY,
                    reason="needs an sm_90 GPU")
def test_first_use_on_hopper_gives_the_library_where_the_toolchain_is_found():
    """On Hopper with the `cuda` extra's headers and an nvcc, the kernels must be had: the CUTLASS
    GPU tests skip themselves at collection when they are not, so this test names the reason."""
    found, reason = T.find_toolchain()
    if found is None:
        pytest.skip(f"no toolchain here: {reason}")
    assert O.unavailable_reason("cuda") is None
