"""Token shards on disk: built once per source and tokenizer, memory-mapped, streamed in."""
import importlib.util
import json

import numpy as np
import pytest

from elas_compile.data import DataError
from elas_compile.data import shards as S
from elas_compile.data.sources import Source, files_source, hf_source
from elas_compile.data.store import BATCH_CHARS, store_folder, token_store
from elas_compile.data.tokenizer import bpe_tokenizer

DOCS = [f"def function_{i}(x):\n    return x * {i}  # multiply by {i}\n" * 3 for i in range(60)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELAS_COMPILE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tok():
    return bpe_tokenizer(DOCS, 300)


def source(docs, key="k", **kw):
    return Source("test", "test docs", key, lambda: ((d, None) for d in docs), **kw)


def test_store_holds_the_tokenizers_ids_and_is_built_once(tok):
    lines = []
    store = token_store(source(DOCS), tok, lines.append)
    assert np.array_equal(store.streams["all"].read(0, store.n_tokens), tok.encode_docs(DOCS))
    assert any("tokenizing test docs" in line for line in lines)
    index = json.loads((store.folder / "index.json").read_text())
    assert index["dtype"] == "uint16" and index["tokens"] == {"all": store.n_tokens}
    assert isinstance(store.streams["all"].parts[0], np.memmap)  # read from the disk, not held
    lines.clear()
    again = token_store(source(DOCS), tok, lines.append)  # cached: nothing is tokenized
    assert lines == [] and again.folder == store.folder
    assert not list(store.folder.parent.glob("*.tmp-*"))  # the build folder was renamed into place
    assert store_folder(source(DOCS, key="other"), tok) != store.folder


def test_shards_roll_over_and_ids_above_65535_use_uint32(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "SHARD_TOKENS", 1000)
    w = S.ShardWriter(tmp_path, "all", S.id_dtype(70_000))
    w.write(range(2500))
    w.write([69_999])
    shards = w.close()
    assert [s["tokens"] for s in shards] == [1000, 1000, 501] and S.id_dtype(70_000) == np.uint32
    S.write_index(tmp_path, {"all": shards}, S.id_dtype(70_000), {})
    _, streams = S.open_streams(tmp_path)
    assert streams["all"].read(995, 1005).tolist() == list(range(995, 1005))
    assert streams["all"].read(2500, 2501).tolist() == [69_999]
    (tmp_path / "all-00001.bin").write_bytes(b"\0" * 10)  # a shard cut short
    with pytest.raises(DataError, match="damaged.*delete that folder"):
        S.open_streams(tmp_path)


def test_a_streamed_source_stops_at_its_token_budget(tok):
    """A stream is tokenized document by document until the budget: never read whole (the
    Hugging Face path used to collect 50M characters in a list first)."""
    read = []

    def endless():
        i = 0
        while True:
            read.append(i)
            yield DOCS[i % len(DOCS)], None
            i += 1

    store = token_store(Source("endless", "endless", "e", endless, max_tokens=5000), tok, lambda s: None)
    assert store.n_tokens == 5000  # an endless stream: it ended, so it was never read whole
    assert len(read) * len(DOCS[0]) <= BATCH_CHARS + len(DOCS[0])  # at most one tokenizer batch in memory


def test_a_failed_build_leaves_no_store(tok):
    def broken():
        yield DOCS[0], None
        raise DataError("data file x.txt is not UTF-8 text")

    with pytest.raises(DataError, match="not UTF-8"):
        token_store(Source("broken", "broken", "b", broken), tok, lambda s: None)
    folder = store_folder(Source("broken", "broken", "b", broken), tok)
    assert not folder.exists() and not list(folder.parent.glob("*"))


def test_files_source_is_keyed_by_content(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("hello")
    k1 = files_source([str(a)]).key
    a.write_text("hello!")
    assert files_source([str(a)]).key != k1
    with pytest.raises(DataError, match="data file not found"):
        files_source([str(tmp_path / "nope.txt")])


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs the `datasets` package")
def test_hf_dataset_into_shards(tmp_path, tok):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": DOCS[i % 60]}) + "\n" for i in range(400)))
    src = hf_source("json", config=None, split="train", text_field="text", data_files=[str(path)],
                    max_tokens=3000)
    store = token_store(src, tok, lambda s: None)
    assert store.n_tokens == 3000
    assert store.streams["all"].read(0, 20).tolist() == tok.encode_docs(DOCS[:1])[:20]
