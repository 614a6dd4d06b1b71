"""The cached BPE tokenizer and local tokenizers."""
import pytest

from elas_compile.data import DataError
from elas_compile.data.tokenizer import EOS, bpe_tokenizer, cache_path_for, load_run_tokenizer, load_tokenizer

DOCS = [f"def function_{i}(x):\n    return x * {i}  # multiply by {i}\n" * 3 for i in range(60)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELAS_COMPILE_CACHE", str(tmp_path / "cache"))


def test_bpe_is_cached_by_corpus_and_vocab(monkeypatch):
    import elas_compile.data.tokenizer as T

    path = cache_path_for(DOCS, 300)
    assert not path.exists()
    tok = bpe_tokenizer(DOCS, 300)
    assert path.is_file() and tok.vocab_size <= 300 and tok.eos_id is not None
    calls = []
    monkeypatch.setattr(T, "train_bpe", lambda *a: calls.append(a))
    again = bpe_tokenizer(DOCS, 300)  # from the cache: no training
    assert calls == [] and again.encode_docs(DOCS[:2]) == tok.encode_docs(DOCS[:2])
    assert cache_path_for(DOCS, 320) != path and cache_path_for(DOCS[1:], 300) != path


def test_encode_round_trip_and_eos_between_documents(tmp_path):
    tok = bpe_tokenizer(DOCS, 300)
    ids = tok.encode_docs(["abc def", "ghi"])
    assert ids.count(tok.eos_id) == 2 and ids[-1] == tok.eos_id
    first = ids[: ids.index(tok.eos_id)]
    assert tok.decode(first) == "abc def"
    tok.save(tmp_path)
    loaded = load_run_tokenizer(tmp_path)
    assert loaded.encode_docs(["abc def", "ghi"]) == ids
    assert load_tokenizer(str(tmp_path / "tokenizer.json")).backend.token_to_id(EOS) == tok.eos_id


def test_transformers_tokenizer_folder(tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok = bpe_tokenizer(DOCS, 300)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok.backend, eos_token=EOS)
    hf.save_pretrained(str(tmp_path / "hf"))
    loaded = load_tokenizer(str(tmp_path / "hf"))
    assert loaded.hf is not None and loaded.vocab_size == tok.vocab_size
    assert loaded.encode_docs(["x = 1"]) == tok.encode_docs(["x = 1"])


def test_tokenizer_errors(tmp_path):
    with pytest.raises(DataError, match="neither a tokenizer.json"):
        load_tokenizer(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="too small"):
        bpe_tokenizer(DOCS, 100)
