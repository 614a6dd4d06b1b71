"""Tokenize a source once into memory-mapped shards, cached and shared by every run on it.

``cache_dir()/tokens/<source>-<hash>/`` holds the shards (:mod:`.shards`) of one source tokenized by
one tokenizer (the hash covers both), so the four variants of a comparison, a resumed run and a
rerun read the same files and tokenize nothing. A build writes into a private temporary folder
and renames it into place when complete: a build that was killed leaves no half store behind,
and two processes building the same store at once both end up reading one of them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

from elas_compile.data import DataError, cache_dir
from elas_compile.data.shards import ShardWriter, TokenStream, id_dtype, open_streams, write_index
from elas_compile.data.sources import Document, Source

BATCH_CHARS = 4_000_000  # text handed to the tokenizer at once: its threads stay busy, memory flat
REPORT_EVERY_S = 30.0


@dataclass
class TokenStore:
    folder: Path
    index: Dict
    streams: Dict[str, TokenStream]

    @property
    def n_tokens(self) -> int:
        return sum(len(s) for s in self.streams.values())


def store_folder(source: Source, tokenizer) -> Path:
    key = hashlib.sha256(f"{source.key}|{tokenizer.digest()}".encode()).hexdigest()[:16]
    return cache_dir() / "tokens" / f"{source.name}-{key}"


def token_store(source: Source, tokenizer, log=print) -> TokenStore:
    """The store of ``source`` tokenized by ``tokenizer``: from the cache, or built now."""
    folder = store_folder(source, tokenizer)
    if not (folder / "index.json").is_file():
        _build_into(folder, source, tokenizer, log)
    index, streams = open_streams(folder)
    return TokenStore(folder, index, streams)


def _tmp_prefix(folder: Path) -> str:
    return f"{folder.name}.tmp-{socket.gethostname()}-"


def _remove_stale_builds(folder: Path) -> None:
    """Temporary folders of this host's builds whose process is gone (killed mid-build)."""
    prefix = _tmp_prefix(folder)
    for tmp in folder.parent.glob(prefix + "*"):
        try:
            os.kill(int(tmp.name[len(prefix):]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _build_into(folder: Path, source: Source, tokenizer, log) -> None:
    tmp = folder.with_name(_tmp_prefix(folder) + str(os.getpid()))
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(folder)
        tmp.mkdir()
        log(f"tokenizing {source.description} into {folder} (once; later runs read it)")
        t0 = time.perf_counter()
        streams = _write_shards(tmp, source, tokenizer, log)
        write_index(tmp, streams, id_dtype(tokenizer.vocab_size),
                    {"source": source.description, "vocab_size": tokenizer.vocab_size,
                     "tokenizer": tokenizer.digest(), "seconds": round(time.perf_counter() - t0, 1)})
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "index.json").is_file():  # not another process's finished build
                raise
    except OSError as e:
        raise DataError(f"cannot write the token cache {folder}: {e.strerror or e}; free space there or "
                        f"point ELAS_COMPILE_CACHE at another disk") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _batches(docs: Iterator[Document]) -> Iterator[List[Document]]:
    batch, chars = [], 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc[0])
        if chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _write_shards(tmp: Path, source: Source, tokenizer, log) -> Dict[str, List[Dict[str, int]]]:
    dtype, eos = id_dtype(tokenizer.vocab_size), tokenizer.eos_id
    writers: Dict[str, ShardWriter] = {}
    budget = source.max_tokens
    total, last_report = 0, time.perf_counter()
    for batch in _batches(source.documents()):
        for (_, split), ids in zip(batch, tokenizer.encode_batch([text for text, _ in batch])):
            if eos is not None:
                ids.append(eos)
            if budget is not None:
                ids = ids[:budget - total]
            name = split or "all"
            if name not in writers:
                writers[name] = ShardWriter(tmp, name, dtype)
            writers[name].write(ids)
            total += len(ids)
        if time.perf_counter() - last_report > REPORT_EVERY_S:
            log(f"  ... {total:,} tokens")
            last_report = time.perf_counter()
        if budget is not None and total >= budget:
            break
    streams = {name: w.close() for name, w in writers.items()}
    _check_streams(source, streams)
    return streams


def _check_streams(source: Source, streams: Dict[str, List[Dict[str, int]]]) -> None:
    if not streams:
        raise DataError(f"{source.description} holds no text")
    if source.presplit and not {"train", "val"} <= set(streams):
        missing = ", ".join(sorted({"train", "val"} - set(streams)))
        raise DataError(f"{source.description} has no {missing} text")

