"""Tokenizers: a byte-level BPE trained locally (and cached), or a local transformers tokenizer.

The BPE tokenizer is trained with the ``tokenizers`` library on the first
:data:`BPE_TRAIN_CHARS` characters of the source's training documents and cached under
``cache_dir()/tokenizers/bpe-<hash>.json``, keyed by the source's content key and the vocabulary
size, so the second run on the same data starts at once. Every run also saves its tokenizer in its
own output folder, so a resumed run never depends on the cache.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

from elas_compile.data import DataError, atomic_write_text, cache_dir
from elas_compile.data.corpus import corpus_digest

BPE_VERSION = "2"
# Enough text for a 32k vocabulary's merges (the embedded corpus is 2.2 MB: all of it); training on
# a prefix keeps a corpus of hundreds of MB from being held in memory, and takes under a minute.
BPE_TRAIN_CHARS = 20_000_000
EOS = "<|endoftext|>"
MIN_VOCAB = 260  # 256 bytes + the special token + a few merges


class Tokenizer:
    """The little the trainer needs from a tokenizer: encode documents, vocabulary size, EOS."""

    def __init__(self, backend, *, hf=None, source: str = ""):
        self.backend = backend  # a tokenizers.Tokenizer
        self.hf = hf  # the transformers tokenizer when loaded from one
        self.source = source

    @property
    def vocab_size(self) -> int:
        if self.hf is not None:
            return len(self.hf)
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def eos_id(self) -> Optional[int]:
        if self.hf is not None:
            return self.hf.eos_token_id
        return self.backend.token_to_id(EOS)

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        """The ids of each text (no special tokens; the fast backend uses all cores)."""
        if self.backend is not None:
            return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]
        return [self.hf.encode(t, add_special_tokens=False) for t in texts]  # a slow transformers tokenizer

    def encode_docs(self, docs: Sequence[str]) -> List[int]:
        """All documents as one id stream, with EOS after each document (when there is one)."""
        eos = self.eos_id
        ids: List[int] = []
        for e in self.encode_batch(docs):
            ids.extend(e)
            if eos is not None:
                ids.append(eos)
        return ids

    def digest(self) -> str:
        """A hash of the tokenizer's full definition (keys the token cache)."""
        text = self.backend.to_str() if self.backend is not None else f"{self.hf.name_or_path}|{len(self.hf)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def decode(self, ids: Sequence[int]) -> str:
        if self.hf is not None:
            return self.hf.decode(list(ids))
        return self.backend.decode(list(ids))

    def save(self, run_dir: Path) -> None:
        """Save into a run folder: ``tokenizer.json`` or, for transformers, ``tokenizer/``."""
        if self.hf is not None:
            self.hf.save_pretrained(str(run_dir / "tokenizer"))
        else:
            atomic_write_text(run_dir / "tokenizer.json", self.backend.to_str())


def train_bpe(docs: Iterable[str], vocab_size: int):
    """Train a byte-level BPE ``tokenizers.Tokenizer`` on ``docs`` (read once, as they come)."""
    from tokenizers import Tokenizer as _Tok, decoders, models, pre_tokenizers, trainers

    tok = _Tok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(iter(docs), trainer=trainer)
    return tok


def bpe_tokenizer(docs: Iterable[str], vocab_size: int, use_cache: bool = True,
                  key: Optional[str] = None, log=None) -> Tokenizer:
    """A BPE tokenizer for ``docs``: from the cache, or trained now and cached. ``key`` names the
    text (a source's content key); without it, ``docs`` is a list and its content is hashed."""
    from tokenizers import Tokenizer as _Tok

    if vocab_size < MIN_VOCAB:
        raise DataError(f"--vocab-size {vocab_size} is too small for a byte-level BPE (at least {MIN_VOCAB})")
    if key is None:
        docs = list(docs)
        key = corpus_digest(docs)
    path = cache_path(key, vocab_size)
    if use_cache and path.is_file():
        return Tokenizer(_Tok.from_file(str(path)), source=str(path))
    if log is not None:
        log(f"training a {vocab_size}-token BPE tokenizer into {path} (once; later runs read it)")
    tok = train_bpe(docs, vocab_size)
    if use_cache:
        atomic_write_text(path, tok.to_str())
    return Tokenizer(tok, source=str(path) if use_cache else "trained")


def training_text(documents: Iterator, max_chars: int = BPE_TRAIN_CHARS) -> Iterator[str]:
    """The texts a BPE learns from: the training documents (not the validation ones) of a
    source's ``(text, split)`` stream, until ``max_chars`` characters."""
    total = 0
    for text, split in documents:
        if split == "val":
            continue
        text = text[:max_chars - total]
        total += len(text)
        yield text
        if total >= max_chars:
            return


def source_tokenizer(source, vocab_size: int, log=None) -> Tokenizer:
    """The cached BPE of a :class:`~elas_compile.data.sources.Source`."""
    key = f"{source.key}|{BPE_TRAIN_CHARS}"
    return bpe_tokenizer(training_text(source.documents()), vocab_size, key=key, log=log)


def cache_path(key: str, vocab_size: int) -> Path:
    digest = hashlib.sha256(f"{BPE_VERSION}|{key}|{vocab_size}".encode()).hexdigest()[:16]
    return cache_dir() / "tokenizers" / f"bpe-{digest}.json"


def cache_path_for(docs: Sequence[str], vocab_size: int) -> Path:
    """Where :func:`bpe_tokenizer` caches the tokenizer of a list of ``docs`` (for tests and tools)."""
    return cache_path(corpus_digest(docs), vocab_size)


def load_tokenizer(path_or_name: str) -> Tokenizer:
    """A local tokenizer: a ``tokenizer.json`` file, or a transformers tokenizer folder/name
    available without a network."""
    p = Path(path_or_name)
    if p.is_file():
        from tokenizers import Tokenizer as _Tok

        try:
            return Tokenizer(_Tok.from_file(str(p)), source=str(p))
        except Exception as e:
            raise DataError(f"cannot read tokenizer file {path_or_name}: {_first_line(e)}") from None
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(path_or_name, local_files_only=True)
    except Exception as e:
        raise DataError(
            f"tokenizer {path_or_name!r} is neither a tokenizer.json file nor a transformers "
            f"tokenizer available locally ({_first_line(e)})"
        ) from None
    backend = hf.backend_tokenizer if getattr(hf, "is_fast", False) else None
    return Tokenizer(backend, hf=hf, source=path_or_name)


def load_run_tokenizer(run_dir: Path) -> Optional[Tokenizer]:
    """The tokenizer a run saved in its folder, if any."""
    if (run_dir / "tokenizer.json").is_file():
        return load_tokenizer(str(run_dir / "tokenizer.json"))
    if (run_dir / "tokenizer").is_dir():
        return load_tokenizer(str(run_dir / "tokenizer"))
    return None


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
