"""Training data for ``elas-compile train``: sources, a cached BPE tokenizer, token shards, batches.

- :mod:`.corpus`: the embedded corpus (the Python installation's own documentation), text files,
  a streamed Hugging Face dataset.
- :mod:`.python_sources`: the ``python-sources`` data preset (the installed packages' and the
  standard library's sources and documentation, split by package).
- :mod:`.sources`: each of them as a :class:`~.sources.Source` (a content key and a document
  stream).
- :mod:`.tokenizer`: a byte-level BPE tokenizer trained locally and cached, or a local
  transformers tokenizer.
- :mod:`.shards` and :mod:`.store`: the token ids on disk (memory-mapped shards, built once per
  source and tokenizer, cached and shared by every run on that data).
- :mod:`.loader`: the train/validation split and a deterministic, resumable, rank-sharded sampler.
"""
from __future__ import annotations

import os
from pathlib import Path


class DataError(ValueError):
    """A user error about the data (missing file, empty or too-small corpus, ...).

    The command line prints its message as one line and exits non-zero."""


def cache_dir() -> Path:
    """Where tokenizers, corpora and token shards are cached.

    ``$ELAS_COMPILE_CACHE`` if set, else ``$XDG_CACHE_HOME/elas_compile``, else
    ``~/.cache/elas_compile``."""
    env = os.environ.get("ELAS_COMPILE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "elas_compile"


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's data to the disk (a folder: its entries, after renames)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so readers never see half a file; the
    data reaches the disk before the rename, so a power cut cannot leave an empty file either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["DataError", "cache_dir", "atomic_write_text", "fsync_path"]
