"""Build what a run trains on and what it trains, from its resolved options.

The order keeps the slow, cached work last: the source and its tokenizer (cached), the model
(where ``--rank`` and the model config are checked), then the token shards (tokenized once per
source and tokenizer, cached); all of it before the run folder is touched.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from elas_compile.data import DataError
from elas_compile.data.loader import BatchSampler, TokenSplit, eval_batches, split_streams
from elas_compile.data.sources import Source, source_from_options
from elas_compile.data.store import token_store
from elas_compile.data.tokenizer import Tokenizer, load_run_tokenizer, load_tokenizer, source_tokenizer
from elas_compile.train.presets import build_model, count_params, load_model_config, preset_config
from elas_compile.train.variant import Variant, rewrite

MANY_EPOCHS = 4  # past this many passes over the same tokens a model memorizes them


@dataclass
class Data:
    tokenizer: Tokenizer
    split: TokenSplit
    sampler: BatchSampler
    eval: List[torch.Tensor]
    source: str
    store: Path  # the token shards' folder

    def epochs(self, steps: int) -> float:
        """How many times ``steps`` steps read the training tokens."""
        return self.sampler.epoch_of(steps)


def prepare_tokenizer(o: Dict[str, Any], run_dir: Path, resume: bool, log=print) -> Tuple[Source, Tokenizer]:
    """The run's source and tokenizer: the run's own on resume, ``--tokenizer``, or the source's
    cached BPE (trained now if absent)."""
    source = source_from_options(o)
    tok: Optional[Tokenizer] = load_run_tokenizer(run_dir) if resume else None
    if tok is None and o.get("tokenizer"):
        tok = load_tokenizer(o["tokenizer"])
    if tok is None:
        tok = source_tokenizer(source, o["vocab_size"], log)
    if tok.vocab_size < 2:
        raise DataError("the tokenizer has an empty vocabulary")
    return source, tok


def prepare_tokens(o: Dict[str, Any], source: Source, tok: Tokenizer, rank: int = 0, world_size: int = 1,
                   log=print) -> Data:
    """The token shards (built now if not cached), the split, this rank's sampler.

    ``o["batch_size"]`` is the global batch: each of the ``world_size`` ranks samples
    ``batch_size / world_size`` sequences of it. The validation batches are global too (the
    loop gives each rank its rows)."""
    from elas_compile.train.distributed import local_batch_size

    local = local_batch_size(o["batch_size"], world_size, o.get("grad_accum", 1))
    store = token_store(source, tok, log)
    split = split_streams(store.streams, o["val_fraction"], o["seq_len"])
    sampler = BatchSampler(split.n_train, o["seq_len"], local, o["seed"], rank, world_size)
    ev = eval_batches(split.val, o["seq_len"], o["batch_size"], o["eval_batches"])
    return Data(tokenizer=tok, split=split, sampler=sampler, eval=ev, source=source.description, store=store.folder)


def epochs_report(data: Data, steps: int) -> List[str]:
    """The lines that say how often the run reads its data (a warning past :data:`MANY_EPOCHS`)."""
    n = data.epochs(steps)
    lines = [f"data: {data.source}: {data.split.n_train:,} train / {data.split.n_val:,} validation tokens "
             f"in {data.store}; {steps:,} steps make {n:.3g} epochs"]
    if n > MANY_EPOCHS:
        lines.append(f"warning: this run repeats its training data {n:.1f} times (over {MANY_EPOCHS} epochs the "
                     f"model memorizes it and the validation loss stops meaning much); give it more data "
                     f"(--data-preset python-sources, --data, --hf-dataset) or fewer --steps")
    return lines


@dataclass
class ModelBundle:
    model: nn.Module  # the rewritten, uncompiled model (checkpoints are taken from it)
    schedule: Any  # elas_compile.SparsitySchedule or None
    report: str
    params_before: int
    params: int
    config: Any  # the transformers config


def prepare_model(o: Dict[str, Any], vocab_size: int, device: torch.device) -> ModelBundle:
    """Build the model (seeded), rewrite it as the variant says, move it to ``device``."""
    if o.get("model_config"):
        config = load_model_config(o["model_config"], vocab_size, o["seq_len"])
    else:
        config = preset_config(o["preset"], vocab_size, o["seq_len"])
    torch.manual_seed(o["seed"])
    model = build_model(config)
    before = count_params(model)
    model, schedule, report = rewrite(model, Variant.from_options(o), total_steps=o["steps"])
    model.to(device)
    return ModelBundle(model=model, schedule=schedule, report=report, params_before=before,
                       params=count_params(model), config=config)
