"""Training data for ``elas-compile train``: corpora, a cached BPE tokenizer, batches.

- :mod:`.corpus`: the embedded corpus (the Python installation's own documentation), text
  files, or a streamed Hugging Face dataset, as a list of documents.
- :mod:`.tokenizer`: a byte-level BPE tokenizer trained locally and cached, or a local
  transformers tokenizer.
- :mod:`.loader`: token ids, the train/validation split and a deterministic, resumable,
  rank-sharded batch sampler.
"""
from __future__ import annotations

import os
from pathlib import Path


class DataError(ValueError):
    """A user error about the data (missing file, empty or too-small corpus, ...).

    The command line prints its message as one line and exits non-zero."""


def cache_dir() -> Path:
    """Where tokenizers and the embedded corpus are cached.

    ``$ELAS_COMPILE_CACHE`` if set, else ``$XDG_CACHE_HOME/elas_compile``, else
    ``~/.cache/elas_compile``."""
    env = os.environ.get("ELAS_COMPILE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "elas_compile"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["DataError", "cache_dir", "atomic_write_text"]
