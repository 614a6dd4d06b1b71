"""Every option of ``elas-compile train`` checked before anything is built or written.

A bad value stops the run with one line naming the option, the value and what is allowed, before
the data is tokenized and before the run folder is created or touched; a value accepted here
cannot crash the run later (``--eval-batches 0`` used to fail after training, before the final
save). Checks that need the data or the model (corpus size, ``--rank`` against the layers' sizes)
happen as soon as those exist, still before the run folder is touched.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

from elas_compile.train.errors import TrainError

# option -> smallest allowed value (None: the option may be unset)
_MIN_INT = {"steps": 1, "batch_size": 1, "seq_len": 1, "grad_accum": 1, "eval_batches": 1, "stop_at": 1,
            "threads": 1, "warmup_steps": 0, "dense_warmup_steps": 0, "dense_final_steps": 0, "save_every": 0, "eval_every": 0,
            "log_every": 0, "seed": 0, "hf_max_tokens": 1}
_OPTIONAL = {"stop_at", "threads", "hf_max_tokens"}
SEED_LIMIT = 2 ** 32  # the sampler seeds torch generators with seed * 1_000_003 + epoch


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _int(o: Dict[str, Any], key: str) -> Optional[int]:
    value = o.get(key)
    if value is None and key in _OPTIONAL:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainError(f"{flag(key)} must be an integer, got {value!r}")
    if value < _MIN_INT[key]:
        raise TrainError(f"{flag(key)} must be >= {_MIN_INT[key]}, got {value}")
    return value


def _float(o: Dict[str, Any], key: str, lo: float, hi: float, *, lo_open: bool = False,
           hi_open: bool = False) -> float:
    value = o.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TrainError(f"{flag(key)} must be a finite number, got {value!r}")
    if (value < lo or (lo_open and value == lo)) or (value > hi or (hi_open and value == hi)):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        upper = "inf" if hi == math.inf else f"{hi:g}"
        raise TrainError(f"{flag(key)} must be in {left}{lo:g}, {upper}{right}, got {value:g}")
    return value


def check_options(o: Dict[str, Any]) -> None:
    """Raise a :class:`TrainError` for the first bad option of resolved options ``o``."""
    for key in _MIN_INT:
        if key in o or key not in _OPTIONAL:
            _int(o, key)
    _float(o, "lr", 0.0, math.inf, lo_open=True)
    _float(o, "min_lr_ratio", 0.0, 1.0)
    _float(o, "weight_decay", 0.0, math.inf)
    _float(o, "beta1", 0.0, 1.0, hi_open=True)
    _float(o, "beta2", 0.0, 1.0, hi_open=True)
    _float(o, "grad_clip", 0.0, math.inf)
    _float(o, "val_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
    if o["seed"] >= SEED_LIMIT:
        raise TrainError(f"--seed must be < 2**32, got {o['seed']}")
    if o["warmup_steps"] > o["steps"]:
        raise TrainError(f"--warmup-steps {o['warmup_steps']} is longer than the run (--steps {o['steps']}): "
                         f"the learning rate would never reach its peak")
    if o["batch_size"] % o["grad_accum"]:
        raise TrainError(f"--batch-size {o['batch_size']} must be a multiple of --grad-accum {o['grad_accum']} "
                         f"(each step's batch is split into that many equal micro-batches)")
    if (o.get("dense_final_steps") or 0) > o["steps"]:
        raise TrainError(f"--dense-final-steps {o['dense_final_steps']} is longer than the run (--steps {o['steps']})")
    if o.get("stop_at") is not None and o["stop_at"] > o["steps"]:
        raise TrainError(f"--stop-at {o['stop_at']} is past the end of the run (--steps {o['steps']})")
    sources = [f for f in ("data", "hf_dataset", "data_preset") if o.get(f)]
    if len(sources) > 1:
        raise TrainError(f"use one data source: {' and '.join(flag(f) for f in sources)} were given")
    if o.get("compile") is False and o.get("compile_mode"):
        raise TrainError("--compile-mode needs compilation: drop --no-compile or --compile-mode")
    if o.get("baseline") == "full" and (o.get("attention") or o.get("rank") is not None
                                        or o.get("lowrank_form") == "cola"):
        raise TrainError("--baseline full trains the unmodified model: drop --attention/--rank/--lowrank-form")
    _check_data(o)


def _check_data(o: Dict[str, Any]) -> None:
    """What can be checked of the data without reading it: the files exist, the BPE can be built."""
    from elas_compile.data.corpus import check_text_files
    from elas_compile.data.tokenizer import MIN_VOCAB

    if o.get("data"):
        check_text_files(o["data"])
    if not o.get("tokenizer") and o["vocab_size"] < MIN_VOCAB:
        raise TrainError(f"--vocab-size {o['vocab_size']} is too small for a byte-level BPE (at least {MIN_VOCAB})")
