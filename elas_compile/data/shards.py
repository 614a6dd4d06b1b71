"""Token ids on disk: shards of ``uint16`` / ``uint32`` ids, memory-mapped, and one stream view.

A token store is a folder with ``index.json`` and binary shards ``<stream>-<n>.bin`` (raw ids,
native byte order, no header: the same layout as nanoGPT's ``train.bin``). A stream is either
``all`` (one token sequence; the run holds out its tail for validation) or ``train`` and ``val``
(a source that splits by itself, like the ``python-sources`` preset). Reading maps the files,
so a run's memory does not grow with the corpus: a batch reads its windows from the page cache.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from elas_compile.data import DataError, atomic_write_text

STORE_VERSION = 1
SHARD_TOKENS = 1 << 27  # 128M ids a file: 256 MB as uint16, small enough to copy or rsync


def id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds every id (uint16 halves the disk and page cache)."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class TokenStream:
    """A sequence of token ids kept in several arrays (memory-mapped shards), read as one."""

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = [p for p in parts if len(p)]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    @classmethod
    def of(cls, ids) -> "TokenStream":
        """A stream over ids held in memory (a list, a tensor or an array)."""
        if hasattr(ids, "numpy"):
            ids = ids.numpy()
        return cls([np.asarray(ids, dtype=np.int64)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, pos: int) -> int:
        return int(np.searchsorted(self.offsets, pos, side="right")) - 1

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Ids ``[lo, hi)`` as int64 (a window may span two shards)."""
        if not 0 <= lo <= hi <= len(self):
            raise IndexError(f"tokens [{lo}, {hi}) outside a stream of {len(self)}")
        out, pos = [], lo
        while pos < hi:
            i = self._locate(pos)
            start = pos - int(self.offsets[i])
            take = min(hi - pos, len(self.parts[i]) - start)
            out.append(self.parts[i][start:start + take])
            pos += take
        if not out:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(out).astype(np.int64)

    def slice(self, lo: int, hi: int) -> "TokenStream":
        """The ids ``[lo, hi)`` as a stream of views (nothing is copied)."""
        parts, pos = [], lo
        while pos < hi:
            i = self._locate(pos)
            start = pos - int(self.offsets[i])
            take = min(hi - pos, len(self.parts[i]) - start)
            parts.append(self.parts[i][start:start + take])
            pos += take
        return TokenStream(parts)


class ShardWriter:
    """Appends ids to ``<stream>-<n>.bin`` files of at most :data:`SHARD_TOKENS` ids each."""

    def __init__(self, folder: Path, stream: str, dtype: np.dtype):
        self.folder, self.stream, self.dtype = folder, stream, dtype
        self.shards: List[Dict[str, int]] = []
        self.tokens = 0
        self._file = None
        self._in_shard = 0

    def write(self, ids: Sequence[int]) -> None:
        arr = np.asarray(ids, dtype=self.dtype)
        while len(arr):
            if self._file is None:
                name = f"{self.stream}-{len(self.shards):05d}.bin"
                self._file = open(self.folder / name, "wb")
                self.shards.append({"file": name, "tokens": 0})
                self._in_shard = 0
            take = min(len(arr), SHARD_TOKENS - self._in_shard)
            self._file.write(arr[:take].tobytes())
            self._in_shard += take
            self.shards[-1]["tokens"] += take
            self.tokens += take
            arr = arr[take:]
            if self._in_shard == SHARD_TOKENS:
                self._file.close()
                self._file = None

    def close(self) -> List[Dict[str, int]]:
        if self._file is not None:
            self._file.close()
            self._file = None
        return self.shards


def write_index(folder: Path, streams: Dict[str, List[Dict[str, int]]], dtype: np.dtype, meta: Dict) -> None:
    """``index.json``, written last: a folder without it is an unfinished build."""
    doc = {"version": STORE_VERSION, "dtype": dtype.name, **meta, "streams": streams,
           "tokens": {name: sum(s["tokens"] for s in shards) for name, shards in streams.items()}}
    atomic_write_text(folder / "index.json", json.dumps(doc, indent=1))


def open_streams(folder: Path) -> tuple:
    """``(index, {stream name: TokenStream})`` of a finished token store."""
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        dtype = np.dtype(index["dtype"])
        streams = {}
        for name, shards in index["streams"].items():
            parts = []
            for s in shards:
                path = folder / s["file"]
                if path.stat().st_size != s["tokens"] * dtype.itemsize:
                    raise ValueError(f"{path.name} holds {path.stat().st_size} bytes, the index says "
                                     f"{s['tokens']} ids")
                parts.append(np.memmap(path, dtype=dtype, mode="r") if s["tokens"] else np.zeros(0, dtype))
            streams[name] = TokenStream(parts)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"the token cache {folder} is damaged ({e}); delete that folder and run again") from None
    return index, streams
