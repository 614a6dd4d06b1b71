"""The options of ``elas-compile train`` and how they are resolved (preset defaults, resume)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from elas_compile.config import BACKWARD_MODES
from elas_compile.train.errors import TrainError
from elas_compile.data.sources import DATA_PRESETS
from elas_compile.train.parallel import CHECKPOINT_POLICIES
from elas_compile.train.presets import DEFAULT_PRESET, PRESETS, get_preset
from elas_compile.train.runtime import COMPILE_MODES
from elas_compile.train.variant import BASELINES

# Options a resumed run may change: they do not alter the training trajectory.
# --parallel, --activation-checkpointing and --grad-accum too: the global batch and the math stay
# the same (a checkpoint saved on W ranks resumes on any number). --steps may grow: the run goes on
# (the cosine LR schedule is stretched to the new end).
RESUME_OVERRIDABLE = {"stop_at", "threads", "eval_every", "save_every", "progress", "compare", "device",
                      "compile", "compile_mode", "resume", "overwrite", "out", "eval_batches", "parallel",
                      "activation_checkpointing", "grad_accum", "steps", "log_every", "tensorboard", "wandb",
                      "wandb_project"}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--preset", default=DEFAULT_PRESET, metavar="NAME",
                   help=f"model size and training defaults: {', '.join(PRESETS)} (default {DEFAULT_PRESET})")
    g.add_argument("--model-config", metavar="JSON|NAME",
                   help="a transformers config JSON file, or a config name available locally (overrides "
                        "the preset's architecture; the vocabulary comes from the tokenizer)")
    g = p.add_argument_group("ELAS variant")
    g.add_argument("--baseline", choices=BASELINES,
                   help="train without ELAS: full = the model as built (full-rank SwiGLU), "
                        "lowrank = dense low-rank ReLU² (ELASConfig(sparsity=False))")
    g.add_argument("--backward", choices=BACKWARD_MODES, default="masked",
                   help="gradient of the 2:4 step: masked (exact), ste (straight-through) or masked-tokens24 "
                        "(masked, the FFN's weight gradients 2:4 along tokens: approximate; docs/kernels.md)")
    g.add_argument("--rank", metavar="R", help="rank: an int, or a ratio of the hidden size (default 0.25)")
    g.add_argument("--attention", action="store_true", help="factorize the attention projections too")
    g.add_argument("--lowrank-form", choices=("plain", "cola"), default="plain",
                   help="plain: U (V x) (ELAS, default); cola: U silu(V x) (CoLA)")
    g.add_argument("--dense-warmup-steps", type=int, metavar="N",
                   help="dense steps before 2:4 sparsity starts (default min(1000, steps/10))")
    g.add_argument("--dense-final-steps", type=int, default=0, metavar="N",
                   help="dense steps at the end of the run, after the 2:4 phase (default 0)")
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="+", metavar="FILE",
                   help="text files to train on (default: the embedded Python-documentation corpus)")
    g.add_argument("--data-preset", choices=DATA_PRESETS,
                   help="python-sources: the .py/.rst/.md/.txt files of this Python's standard library and "
                        "installed packages (hundreds of MB, no download), split by package")
    g.add_argument("--hf-dataset", metavar="NAME", help="stream a Hugging Face dataset (needs `datasets`)")
    g.add_argument("--hf-config", metavar="NAME", help="the dataset's configuration (e.g. en for allenai/c4)")
    g.add_argument("--hf-split", default="train", metavar="SPLIT")
    g.add_argument("--hf-text-field", default="text", metavar="FIELD")
    g.add_argument("--hf-data-files", nargs="+", metavar="FILE", help="local files for builders like json/text")
    g.add_argument("--hf-max-tokens", type=int, metavar="N",
                   help="stop streaming once this many tokens are stored (default: what the run consumes, "
                        "steps x batch x seq-len, plus the validation share)")
    g.add_argument("--tokenizer", metavar="PATH",
                   help="a tokenizer.json or a local transformers tokenizer (default: a BPE trained "
                        "on the corpus and cached)")
    g.add_argument("--vocab-size", type=int, metavar="N", help="BPE vocabulary size (default: the preset's)")
    g.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                   help="the held-out tail of the corpus (default 0.1)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, metavar="N", help="optimizer steps (default: the preset's)")
    g.add_argument("--batch-size", type=int, metavar="B", help="sequences per step (default: the preset's)")
    g.add_argument("--grad-accum", type=int, default=1, metavar="N",
                   help="split each step's batch into N micro-batches, gradients accumulated (same "
                        "optimizer step, less activation memory; default 1)")
    g.add_argument("--seq-len", type=int, metavar="T", help="tokens per sequence (default: the preset's)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    g.add_argument("--min-lr-ratio", type=float, default=0.1, help="final LR / peak LR of the cosine")
    g.add_argument("--warmup-steps", type=int, metavar="N", help="LR warm-up steps (default 10%% of --steps)")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.95)
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: off)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="run folder (default runs/<name>)")
    g.add_argument("--name", help="run name (default <preset>-<variant>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    g.add_argument("--overwrite", action="store_true", help="start over in a run folder that holds a run")
    g.add_argument("--stop-at", type=int, metavar="STEP", help="save a checkpoint and stop at this step")
    g.add_argument("--eval-every", type=int, metavar="N", help="validate every N steps (default: the preset's)")
    g.add_argument("--eval-batches", type=int, default=8, metavar="N", help="validation batches (default 8)")
    g.add_argument("--save-every", type=int, metavar="N",
                   help="checkpoint every N steps (default: --eval-every; 0: only at the end)")
    g.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="overlay these runs in loss.png")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 autocast on GPU, fp32 on CPU")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (default: on with CUDA, off on CPU)")
    g.add_argument("--compile-mode", choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile mode: reduce-overhead (CUDA graphs, the default on CUDA: ELAS's "
                        "cuSPARSELt calls are slow without them), default, max-autotune, "
                        "max-autotune-no-cudagraphs")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: min(4, free cores), see docs/train.md)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: only when stderr is a terminal)")
    g = p.add_argument_group("logging")
    g.add_argument("--log-every", type=int, default=10, metavar="N",
                   help="every N steps a line (step, loss, lr, tokens/s, memory) on stdout and in "
                        "<out>/train.log (default 10; 0: off)")
    g.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard events to <out>/tensorboard (needs `tensorboard`)")
    g.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (needs `wandb`)")
    g.add_argument("--wandb-project", default="elas-compile", metavar="NAME", help="W&B project (default elas-compile)")
    g = p.add_argument_group("distributed (launch with torchrun; see docs/distributed.md)")
    g.add_argument("--parallel", choices=("none", "ddp", "fsdp"), default="none",
                   help="data parallelism over torchrun's processes: ddp (replicated weights) or fsdp "
                        "(FSDP2 fully_shard per transformer block); --batch-size is the global batch, "
                        "split evenly over the processes")
    g.add_argument("--activation-checkpointing", nargs="?", const="block", default="none", choices=CHECKPOINT_POLICIES,
                   help="recompute activations in the backward (saves memory): block = each transformer block "
                        "(the default when the option has no value), selective = each block's attention only "
                        "(ELAS's compressed FFN activations are kept), none (default)")


def resolve(opts: Dict[str, Any]) -> Dict[str, Any]:
    """Fill the defaults that depend on the preset and on other options, then check them all."""
    from elas_compile.train.validate import check_options

    o = dict(opts)
    preset = get_preset(o["preset"])
    for key in ("steps", "batch_size", "seq_len", "lr", "eval_every", "vocab_size"):
        if o.get(key) is None:
            o[key] = getattr(preset, key)
    if o.get("warmup_steps") is None:
        o["warmup_steps"] = max(1, o["steps"] // 10)
    if o.get("dense_warmup_steps") is None:
        o["dense_warmup_steps"] = min(1000, o["steps"] // 10)
    if o.get("save_every") is None:
        o["save_every"] = o["eval_every"]
    if o.get("hf_dataset") and o.get("hf_max_tokens") is None and 0 < o["val_fraction"] < 1:
        # one epoch of the run, plus the validation tail the split takes from it
        o["hf_max_tokens"] = math.ceil(o["steps"] * o["batch_size"] * (o["seq_len"] + 1) / (1 - o["val_fraction"]))
    check_options(o)
    if not o.get("name"):
        arch = Path(o["model_config"]).stem if o.get("model_config") else o["preset"]
        from elas_compile.train.variant import Variant

        o["name"] = f"{arch}-{Variant.from_options(o).name}"
    if not o.get("out"):
        o["out"] = str(Path("runs") / o["name"])
    return o


def merge_for_resume(saved: Dict[str, Any], explicit: Dict[str, Any], defaults: Dict[str, Any]) -> Dict[str, Any]:
    """The options of a resumed run: the saved ones (options added since the run started get their
    defaults), plus the few that may change."""
    merged = {**defaults, **saved}
    for key, value in explicit.items():
        if key in RESUME_OVERRIDABLE:
            merged[key] = value
        elif saved.get(key, defaults.get(key)) != value:
            flag = "--" + key.replace("_", "-")
            raise TrainError(
                f"{flag} differs from the run being resumed ({saved.get(key)!r} there, {value!r} now); "
                f"drop it, or start a new run with another --out"
            )
    return merged


def read_saved_options(run_dir: Path) -> Optional[Dict[str, Any]]:
    path = run_dir / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["options"]
    except (ValueError, KeyError) as e:
        raise TrainError(f"cannot read {path}: {e}") from None


def run_files(run_dir: Path) -> List[Path]:
    """Files a run writes (removed by --overwrite; nothing else in the folder is touched)."""
    names = ["run.json", "metrics.csv", "metrics.json", "loss.png", "explain.txt", "tokenizer.json", "tokenizer",
             "checkpoint", "checkpoint.tmp", "checkpoint.old", "train.log", "tensorboard", "wandb", "wandb.id"]
    return [run_dir / n for n in names]
