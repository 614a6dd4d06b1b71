"""What the `elas-compile train` tests share: an isolated working folder and cache, small runs,
and the one-line-error check."""
import pytest

from conftest import write_docs_text

# one thread: the default follows the machine's load, and float sums depend on the thread count
FAST = ["--batch-size", "4", "--seq-len", "32", "--no-progress", "--threads", "1"]


@pytest.fixture
def isolated(tmp_path_factory, tmp_path, monkeypatch):
    """A cache shared by the tests of one pytest run (not the user's ~/.cache), and a fresh working
    folder: no test reads or writes the `runs/` of the folder pytest was started from."""
    monkeypatch.setenv("ELAS_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "elas_cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return write_docs_text(tmp_path_factory, 120_000)


def small(text_file, *extra):
    return ["--data", text_file, "--vocab-size", "300", *FAST, *extra]


def one_line_error(capsys, rc, match, status=2):
    err = capsys.readouterr().err.strip()
    assert rc == status, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("elas-compile") and match in err, err
    return err


def snapshot(folder):
    """Names, sizes and modification times of everything under ``folder`` (None if absent)."""
    if not folder.exists():
        return None
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))
