"""The python-sources data preset: files of the installed packages, split by package."""
import pytest

from elas_compile.data import DataError
from elas_compile.data import python_sources as P
from elas_compile.data.sources import python_sources_source
from elas_compile.data.store import token_store
from elas_compile.data.tokenizer import source_tokenizer


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELAS_COMPILE_CACHE", str(tmp_path / "cache"))


def fake_install(root):
    """A standard library and a site-packages folder with 12 packages."""
    stdlib, site = root / "lib", root / "site"
    (stdlib / "site-packages").mkdir(parents=True)
    (stdlib / "site-packages" / "ignored.py").write_text("x = 1\n")  # walked as its own root
    (stdlib / "os.py").write_text('"""Operating system interfaces."""\nimport sys\n' * 20)
    for i in range(12):
        pkg = site / f"pkg{i}"
        (pkg / "__pycache__").mkdir(parents=True)
        (pkg / "__init__.py").write_text(f'"""Package {i}."""\ndef f{i}(x):\n    return x + {i}\n' * 30)
        (pkg / "README.md").write_text(f"# pkg{i}\n\nDocumentation of package number {i}.\n" * 10)
        (pkg / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0binary")
        (pkg / "data.bin").write_bytes(b"\0\1\2")
        (pkg / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))  # not UTF-8: skipped
    (site / "pkg0-1.0.dist-info").mkdir()
    (site / "pkg0-1.0.dist-info" / "top_level.txt").write_text("pkg0\n")
    (site / "six.py").write_text("# one-module package\n" * 40)
    return [("stdlib/", stdlib), ("", site)]


def test_packages_files_and_split(tmp_path):
    roots = fake_install(tmp_path)
    packages = P.find_packages(roots)
    names = [p.name for p in packages]
    assert sorted(names) == sorted(["stdlib/os", "six", *[f"pkg{i}" for i in range(12)]])
    assert names == sorted(names, key=P.split_hash)  # hash order: any prefix mixes packages
    pkg0 = next(p for p in packages if p.name == "pkg0")
    assert sorted(str(f) for f in pkg0.files) == ["pkg0/README.md", "pkg0/__init__.py", "pkg0/latin1.txt"]
    docs = list(P.documents(packages, 0.3))
    assert all("caf" not in text for text, _ in docs)  # the Latin-1 file was left out
    val = {p.name for p in packages if P.in_validation(p.name, 0.3)}
    assert 0 < len(val) < len(packages)
    for pkg in packages:  # every file of a package lands in one split
        splits = {split for text, split in P.documents([pkg], 0.3)}
        assert splits == {"val" if pkg.name in val else "train"}
    assert P.in_validation("torch", 0.1) == P.in_validation("torch", 0.1)  # deterministic, no seed
    key, size = P.inventory(packages)
    (tmp_path / "site" / "pkg3" / "new.py").write_text("y = 2\n")
    assert P.inventory(P.find_packages(roots))[0] != key and size > 10_000


def test_preset_tokenized_into_train_and_val_shards(tmp_path):
    src = python_sources_source(0.3, roots=fake_install(tmp_path))
    assert src.presplit and "python-sources (14 packages" in src.description
    tok = source_tokenizer(src, 300)
    store = token_store(src, tok, lambda s: None)
    assert set(store.streams) == {"train", "val"}
    assert len(store.streams["train"]) > 0 and len(store.streams["val"]) > 0


def test_a_fraction_that_empties_a_split_is_refused(tmp_path):
    with pytest.raises(DataError, match="validation split"):
        python_sources_source(1e-9, roots=fake_install(tmp_path))


def test_default_roots_are_this_pythons():
    roots = P.default_roots()
    assert roots[0][0] == "stdlib/" and (roots[0][1] / "os.py").is_file()
    assert len({str(r) for _, r in roots}) == len(roots)
