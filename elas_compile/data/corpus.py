"""Where the training text comes from: documents, read or streamed.

Three sources (the fourth, the ``python-sources`` preset, is :mod:`.python_sources`):

- :func:`embedded_corpus`: the default. Built from the running Python installation's own
  documentation: the pydoc topics (``pydoc_data.topics``, the language reference) and the
  docstrings of the standard library, read with :mod:`ast` (nothing is imported). About 2 MB of
  English prose and code, no download and no file from outside the package. Cached after the
  first build (a few seconds).
- :func:`read_text_files`: local text files, one document each.
- :func:`hf_documents`: a Hugging Face dataset, streamed one document at a time (needs the
  ``datasets`` package and, for hub datasets, a network).
"""
from __future__ import annotations

import ast
import hashlib
import os
import sys
import sysconfig
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

from elas_compile.data import DataError, atomic_write_text, cache_dir

# Bump when the way the embedded corpus is built changes (invalidates the cache).
EMBEDDED_VERSION = "1"
DOC_SEPARATOR = "\n\x1e\n"  # record separator between cached documents

# Standard-library folders whose docstrings are left out: tests, GUIs, generated data.
_SKIP_DIRS = {
    "test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "turtledemo",
    "__pycache__", "ensurepip", "pydoc_data", "venv",
}


def _pydoc_topics() -> List[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # stripped-down installations
        return []
    return [f"{name}\n\n{topics[name].strip()}" for name in sorted(topics) if topics[name].strip()]


def _stdlib_docstrings(root: Path) -> List[str]:
    docs: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for filename in sorted(filenames):
            if not filename.endswith(".py"):
                continue
            path = Path(dirpath) / filename
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            parts = []
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc and len(doc) > 40:
                        name = module if isinstance(node, ast.Module) else f"{module}.{node.name}"
                        parts.append(f"{name}\n{doc.strip()}")
            if parts:
                docs.append("\n\n".join(parts))
    return docs


def embedded_key() -> str:
    """What the embedded corpus depends on: this Python (version and standard-library folder)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    return hashlib.sha256(f"{EMBEDDED_VERSION}|{sys.version}|{stdlib}".encode()).hexdigest()[:16]


def embedded_corpus(use_cache: bool = True) -> List[str]:
    """The default corpus: pydoc topics + standard-library docstrings of this Python."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    cached = cache_dir() / "corpus" / f"embedded-{embedded_key()}.txt"
    if use_cache and cached.is_file():
        return cached.read_text(encoding="utf-8").split(DOC_SEPARATOR)
    docs = _pydoc_topics() + _stdlib_docstrings(stdlib)
    docs = [d.replace("\x1e", " ") for d in docs]
    if not docs:
        raise DataError(
            "the embedded corpus is empty (this Python has no pydoc topics or standard-library "
            "sources); pass --data FILE..."
        )
    if use_cache:
        atomic_write_text(cached, DOC_SEPARATOR.join(docs))
    return docs


def check_text_files(paths: Sequence[str]) -> None:
    """Every ``--data`` path exists and is a file (checked before anything is built)."""
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise DataError(f"data file not found: {p}")
        if not path.is_file():
            raise DataError(f"--data expects text files, {p} is not a file")


def read_text_file(p: str) -> str:
    """One document: a UTF-8 file. Missing, unreadable or empty files are user errors."""
    check_text_files([p])
    try:
        text = Path(p).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"data file {p} is not UTF-8 text") from None
    except OSError as e:
        raise DataError(f"cannot read data file {p}: {e.strerror or e}") from None
    if not text.strip():
        raise DataError(f"data file {p} is empty")
    return text


def read_text_files(paths: Sequence[str]) -> List[str]:
    """One document per file (see :func:`read_text_file`)."""
    return [read_text_file(p) for p in paths]


def hf_documents(
    name: str,
    *,
    config: Optional[str] = None,
    split: str = "train",
    text_field: str = "text",
    data_files: Optional[Sequence[str]] = None,
) -> Iterator[str]:
    """Stream the documents of a Hugging Face dataset, one at a time (nothing is kept).

    ``name`` is a hub name (``"allenai/c4"``, needs a network) or a builder such as ``"json"``,
    ``"text"`` or ``"parquet"`` together with local ``data_files``. The caller decides when to
    stop (the token store stops at its token budget).
    """
    ds = open_hf_dataset(name, config=config, split=split, data_files=data_files)
    found = False
    for record in _iter_records(ds):
        if text_field not in record:
            raise DataError(
                f"Hugging Face dataset {name!r} has no field {text_field!r} "
                f"(fields: {', '.join(sorted(record))}); pass --hf-text-field"
            )
        text = record[text_field]
        if isinstance(text, str) and text.strip():
            found = True
            yield text
    if not found:
        raise DataError(f"Hugging Face dataset {name!r} (split {split!r}) has no text")


def open_hf_dataset(name: str, *, config: Optional[str], split: str, data_files: Optional[Sequence[str]]):
    """The dataset in streaming mode (records are fetched as they are read)."""
    try:
        import datasets  # lazy: an optional dependency
    except ImportError:
        raise DataError("--hf-dataset needs the `datasets` package: pip install datasets") from None
    try:
        return datasets.load_dataset(name, config, split=split, streaming=True,
                                     data_files=list(data_files) if data_files else None)
    except Exception as e:  # network, unknown name, bad files: all user-facing
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot load Hugging Face dataset {name!r}: {msg}") from None


def _iter_records(ds) -> Iterable[dict]:
    try:
        yield from ds
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"error while streaming the Hugging Face dataset: {msg}") from None


def corpus_digest(docs: Sequence[str]) -> str:
    """A short content hash of a corpus (keys the tokenizer cache)."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]
