"""A fresh compile cache for each benchmarked variant.

Inductor reads ``TORCHINDUCTOR_CACHE_DIR`` when it uses its cache, not once at import
(``torch/_inductor/runtime/cache_dir_utils.py``: ``cache_dir()`` reads the variable on every
call), so pointing it at a new directory before a variant compiles gives that variant an empty
on-disk cache. Some lookups are memoised in memory, though (the local cache path behind a
``functools.cache``, ``PyCodeCache``'s loaded modules, autotuning results): Inductor registers
those with ``clear_on_fresh_cache``, and clearing them, as ``torch._inductor.utils.fresh_cache``
does, makes the new directory the one used. Dynamo's compiled frames are dropped with
``torch._dynamo.reset()``. Triton's kernel cache follows (``TRITON_CACHE_DIR`` inside the new
directory), so nothing compiled for one variant is reused by the next.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

import torch

ENV_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


def clear_inductor_memory_caches() -> None:
    """Empty Inductor's in-memory caches (the set ``fresh_cache`` clears)."""
    from torch._inductor import utils

    clear = getattr(utils, "clear_caches", None) or utils.clear_inductor_caches  # renamed in torch 2.8
    clear()


@contextlib.contextmanager
def fresh_compile_cache(label: str) -> Iterator[str]:
    """Compile inside this block with new, empty Inductor and Triton caches (a temporary
    directory, yielded, removed afterwards) and a reset Dynamo; the environment is restored."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
    directory = tempfile.mkdtemp(prefix=f"elas_bench_{safe}_")
    saved = {k: os.environ.get(k) for k in ENV_VARS}
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = directory
    os.environ["TRITON_CACHE_DIR"] = os.path.join(directory, "triton")
    torch._dynamo.reset()
    clear_inductor_memory_caches()
    try:
        yield directory
    finally:
        torch._dynamo.reset()
        clear_inductor_memory_caches()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(directory, ignore_errors=True)
