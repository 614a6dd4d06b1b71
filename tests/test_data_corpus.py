"""Corpus sources of `elas-compile train`: embedded, text files, Hugging Face datasets."""
import importlib.util
import itertools
import json

import pytest

from elas_compile.data import DataError
from elas_compile.data.corpus import embedded_corpus, hf_documents, read_text_files


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ELAS_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "elas_cache"))


def test_embedded_corpus_is_python_docs_and_cached(tmp_path_factory):
    docs = embedded_corpus()
    text = "".join(docs)
    assert len(docs) > 50 and len(text) > 300_000
    assert "The \"assert\" statement" in text or "assert" in text  # pydoc topics
    cached = list((tmp_path_factory.getbasetemp() / "elas_cache" / "corpus").glob("embedded-*.txt"))
    assert len(cached) == 1
    assert embedded_corpus() == docs  # the second call reads the cache


def test_read_text_files(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("hello world\n")
    b.write_text("second document")
    assert read_text_files([str(a), str(b)]) == ["hello world\n", "second document"]


@pytest.mark.parametrize("kind,match", [("missing", "not found"), ("empty", "is empty"),
                                        ("dir", "not a file"), ("binary", "not UTF-8")])
def test_read_text_files_errors(tmp_path, kind, match):
    p = tmp_path / "f.txt"
    if kind == "empty":
        p.write_text("  \n")
    elif kind == "dir":
        p.mkdir()
    elif kind == "binary":
        p.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match=match):
        read_text_files([str(p)])


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="`datasets` is installed")
def test_hf_dataset_without_datasets_is_a_clear_error():
    with pytest.raises(DataError, match="pip install datasets"):
        next(hf_documents("allenai/c4"))


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None,
                    reason="the `datasets` package is not installed (optional dependency)")
def test_hf_dataset_streams_a_local_json_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"content": f"document number {i} " * 5}) + "\n" for i in range(20)))
    stream = hf_documents("json", data_files=[str(path)], text_field="content")
    first = list(itertools.islice(stream, 3))  # a generator: the caller decides when to stop
    assert [d.split()[2] for d in first] == ["0", "1", "2"]
    with pytest.raises(DataError, match="no field 'text'"):
        next(hf_documents("json", data_files=[str(path)]))
