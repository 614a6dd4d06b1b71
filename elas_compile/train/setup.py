"""Build what a run trains on and what it trains, from its resolved options."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from elas_compile.data import DataError
from elas_compile.data.corpus import embedded_corpus, hf_dataset_texts, read_text_files
from elas_compile.data.loader import BatchSampler, TokenSplit, eval_batches, split_tokens
from elas_compile.data.tokenizer import Tokenizer, bpe_tokenizer, load_run_tokenizer, load_tokenizer
from elas_compile.train.presets import build_model, count_params, load_model_config, preset_config
from elas_compile.train.variant import Variant, rewrite


@dataclass
class Data:
    tokenizer: Tokenizer
    split: TokenSplit
    sampler: BatchSampler
    eval: List[torch.Tensor]
    source: str


def load_documents(o: Dict[str, Any]) -> Tuple[List[str], str]:
    """The corpus of a run and a short description of where it came from."""
    if o.get("data"):
        return read_text_files(o["data"]), f"{len(o['data'])} file(s)"
    if o.get("hf_dataset"):
        docs = hf_dataset_texts(
            o["hf_dataset"], config=o.get("hf_config"), split=o.get("hf_split", "train"),
            text_field=o.get("hf_text_field", "text"), max_chars=o.get("hf_max_chars", 50_000_000),
            data_files=o.get("hf_data_files"),
        )
        return docs, f"Hugging Face {o['hf_dataset']}"
    return embedded_corpus(), "embedded Python documentation"


def prepare_data(o: Dict[str, Any], run_dir: Path, resume: bool, rank: int = 0, world_size: int = 1,
                 tokenizer: Optional[Tokenizer] = None) -> Data:
    """Corpus, tokenizer (``tokenizer`` if given, e.g. rank 0's), split, this rank's sampler.

    ``o["batch_size"]`` is the global batch: each of the ``world_size`` ranks samples
    ``batch_size / world_size`` sequences of it. The validation batches are global too (the
    loop gives each rank its rows)."""
    from elas_compile.train.distributed import local_batch_size

    local = local_batch_size(o["batch_size"], world_size)
    docs, source = load_documents(o)
    tok: Optional[Tokenizer] = tokenizer or (load_run_tokenizer(run_dir) if resume else None)
    if tok is None:
        tok = load_tokenizer(o["tokenizer"]) if o.get("tokenizer") else bpe_tokenizer(docs, o["vocab_size"])
    ids = tok.encode_docs(docs)
    split = split_tokens(ids, o["val_fraction"], o["seq_len"])
    sampler = BatchSampler(split.n_train, o["seq_len"], local, o["seed"], rank, world_size)
    ev = eval_batches(split.val, o["seq_len"], o["batch_size"], o["eval_batches"])
    if tok.vocab_size < 2:
        raise DataError("the tokenizer has an empty vocabulary")
    return Data(tokenizer=tok, split=split, sampler=sampler, eval=ev, source=source)


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
    model, schedule, report = rewrite(model, Variant.from_options(o))
    model.to(device)
    return ModelBundle(model=model, schedule=schedule, report=report, params_before=before,
                       params=count_params(model), config=config)
