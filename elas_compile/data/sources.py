"""A run's data source: what its text is (a content key) and how to read it (a document stream).

The key names the content, not the path it was read from: the tokenizer and the token shards are
cached under it (:mod:`.tokenizer`, :mod:`.store`), so every run and every variant on the same
data tokenizes it once. Documents are yielded one at a time, so a source larger than memory
(a Hugging Face stream, the ``python-sources`` preset) never sits in memory whole.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

from elas_compile.data import DataError

# (text, split): split is "train" or "val" for a source that splits by itself, None when the run
# holds out the tail of the token stream (--val-fraction)
Document = Tuple[str, Optional[str]]
DATA_PRESETS = ("python-sources",)


@dataclass(frozen=True)
class Source:
    name: str  # a short slug for cache folder names
    description: str
    key: str
    documents: Callable[[], Iterator[Document]]
    presplit: bool = False  # yields "train"/"val" itself
    max_tokens: Optional[int] = None  # a stream is cut after this many tokens


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def embedded_source() -> Source:
    from elas_compile.data.corpus import embedded_corpus, embedded_key

    return Source("embedded", "embedded Python documentation", _digest("embedded", embedded_key()),
                  lambda: ((d, None) for d in embedded_corpus()))


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_source(paths: Sequence[str]) -> Source:
    """``--data FILE...``: one document per file, read one at a time."""
    from elas_compile.data.corpus import check_text_files, read_text_file

    check_text_files(paths)
    try:
        key = _digest("files", [_file_digest(p) for p in paths])
    except OSError as e:
        raise DataError(f"cannot read data file {e.filename}: {e.strerror or e}") from None
    return Source("files", f"{len(paths)} file(s)", key, lambda: ((read_text_file(p), None) for p in paths))


def _local_stat(files: Optional[Sequence[str]]) -> list:
    return [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) if os.path.isfile(f) else f for f in files or []]


def hf_source(name: str, *, config: Optional[str], split: str, text_field: str,
              data_files: Optional[Sequence[str]], max_tokens: int) -> Source:
    """``--hf-dataset``: streamed until ``max_tokens`` tokens are stored."""
    from elas_compile.data.corpus import hf_documents

    key = _digest("hf", name, config, split, text_field, _local_stat(data_files), max_tokens)

    def docs() -> Iterator[Document]:
        for text in hf_documents(name, config=config, split=split, text_field=text_field, data_files=data_files):
            yield text, None

    return Source("hf-" + name.replace("/", "_"), f"Hugging Face {name}", key, docs, max_tokens=max_tokens)


def python_sources_source(val_fraction: float, roots=None) -> Source:
    """The ``python-sources`` preset (:mod:`.python_sources`), split by package."""
    from elas_compile.data import python_sources as P

    packages = P.find_packages(roots)
    if not packages:
        raise DataError("the python-sources preset found no .py/.rst/.md/.txt file in this Python installation")
    inv, size = P.inventory(packages)
    n_val = sum(P.in_validation(p.name, val_fraction) for p in packages)
    if n_val == 0 or n_val == len(packages):
        raise DataError(f"--val-fraction {val_fraction} puts {n_val} of {len(packages)} packages in the "
                        f"validation split; choose a fraction that leaves both splits packages")
    desc = (f"python-sources ({len(packages)} packages, {n_val} held out, "
            f"{sum(len(p.files) for p in packages):,} files, {size / 1e6:.0f} MB)")
    return Source("python-sources", desc, _digest("python-sources", inv, val_fraction),
                  lambda: P.documents(packages, val_fraction), presplit=True)


def source_from_options(o: Dict[str, Any]) -> Source:
    """The source of resolved ``elas-compile train`` options."""
    if o.get("data"):
        return files_source(o["data"])
    if o.get("hf_dataset"):
        return hf_source(o["hf_dataset"], config=o.get("hf_config"), split=o.get("hf_split") or "train",
                         text_field=o.get("hf_text_field") or "text", data_files=o.get("hf_data_files"),
                         max_tokens=o["hf_max_tokens"])
    preset = o.get("data_preset")
    if preset == "python-sources":
        return python_sources_source(o["val_fraction"])
    if preset:
        raise DataError(f"unknown --data-preset {preset!r}; choose one of: {', '.join(DATA_PRESETS)}")
    return embedded_source()


__all__ = ["Source", "Document", "DATA_PRESETS", "source_from_options"]
