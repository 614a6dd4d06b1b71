"""``elas-compile`` command line: ``train``, ``plot`` and ``bench``.

    elas-compile train                       # llama-tiny, ELAS, embedded corpus, ~1 min on a CPU
    elas-compile train --baseline full       # the same model without ELAS
    elas-compile plot runs/a runs/b -o cmp.png
    elas-compile bench --preset llama-130m
    torchrun --nproc-per-node 8 -m elas_compile train --preset llama-1b --parallel fsdp

User errors (missing file, unknown preset, a model the rewrite cannot handle, a corrupt checkpoint,
a full disk, ...) print one line on stderr and exit with status 2; no traceback. A diverged run
exits with 1; a run stopped by SIGTERM or Ctrl-C saves a checkpoint and exits with 128 + the
signal's number (143, 130).
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import List, Optional

from elas_compile.data import DataError
from elas_compile.train.errors import TrainError, first_line

PROG = "elas-compile"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are TrainErrors (one line, no usage dump)."""

    def error(self, message: str):  # noqa: D401
        raise TrainError(f"{message} (see {self.prog} --help)")


def version() -> str:
    """``elas-compile --version``: the package and the torch it runs on."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    import torch

    try:
        v = dist_version("elas-compile")
    except PackageNotFoundError:  # run from a source tree that was never installed
        v = "unknown (not installed)"
    return f"{PROG} {v} (torch {torch.__version__}, Python {sys.version.split()[0]})"


def _add_version(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", action="version", version=version(), help="print the version and exit")


def _train_parser(prog: str, suppress: bool = False) -> argparse.ArgumentParser:
    from elas_compile.train.options import add_train_arguments

    p = _Parser(prog=prog, description="Pre-train a LLaMA-like model with ELAS (or a baseline).")
    add_train_arguments(p)
    if suppress:  # a parser that only reports the options given on the command line
        for action in p._actions:
            action.default = argparse.SUPPRESS
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Pre-train LLaMA-like models with ELAS, plot runs, benchmark the variants.",
                     epilog="examples:\n" + __doc__.split("\n\n")[1] + "\n\nSee docs/train.md.")
    _add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from elas_compile.train.options import add_train_arguments

    train = sub.add_parser("train", help="pre-train a model (default: llama-tiny, ELAS)",
                           description="Pre-train a LLaMA-like model with ELAS (or a baseline).")
    add_train_arguments(train)
    _add_version(train)
    plot = sub.add_parser("plot", help="overlay the loss curves of runs in one PNG")
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders of `elas-compile train` runs")
    plot.add_argument("-o", "--out", default="loss_comparison.png", help="the PNG to write")
    plot.add_argument("--title", help="figure title")
    from elas_compile.train.bench import add_bench_arguments

    add_bench_arguments(sub.add_parser("bench", help="training throughput and memory of the ELAS variants"))
    from elas_compile.kernels.cutlass.build import add_arguments as add_build_kernels_arguments

    add_build_kernels_arguments(sub.add_parser("build-kernels", help="build the CUTLASS kernels for Hopper now "
                                               "(else on first use) and report the toolchain"))
    return parser


def cmd_train(ns: argparse.Namespace, argv: List[str]) -> int:
    from elas_compile.train.options import merge_for_resume, read_saved_options, resolve
    from elas_compile.train.run import train
    from elas_compile.train.signals import exit_status

    opts = {k: v for k, v in vars(ns).items() if k != "command"}
    if opts["resume"]:
        explicit = vars(_train_parser(f"{PROG} train", suppress=True).parse_args(argv))
        defaults = vars(_train_parser(f"{PROG} train").parse_args([]))
        run_dir = Path(opts["out"] or resolve(opts)["out"])
        saved = read_saved_options(run_dir)
        if saved is None:
            raise TrainError(f"nothing to resume in {run_dir}: no run.json there (pass the run's --out)")
        opts = merge_for_resume(saved, explicit, defaults)
        opts.update(resume=True, out=str(run_dir))
    else:
        opts = resolve(opts)
    summary = train(opts)
    return exit_status(summary["stopped_by"]) if summary.get("stopped_by") else 0


def cmd_plot(ns: argparse.Namespace) -> int:
    from elas_compile.train.plot import plot_runs

    out = plot_runs([Path(r) for r in ns.runs], Path(ns.out), title=ns.title)
    print(f"wrote {out}")
    return 0


def user_errors() -> tuple:
    errors = [TrainError, DataError]
    try:
        import elas_compile

        err = getattr(elas_compile, "ELASError", None)
        if isinstance(err, type):
            errors.append(err)
    except ImportError:
        pass
    return tuple(errors)


# A full disk, a quota, a read-only or forbidden folder met while writing the run's files: the
# user's environment, not a bug (checkpoint saves say more: elas_compile.train.dcp).
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _error(command: Optional[str], message: str) -> None:
    where = f"{PROG} {command}" if command in ("train", "plot", "bench") else PROG
    rank = os.environ.get("RANK", "0")
    where = f"[rank {rank}] {where}" if rank not in ("", "0") else where
    print(f"{where}: error: {message}", file=sys.stderr)


TRAIN_EXTRA = ("transformers", "tokenizers", "safetensors", "tqdm", "matplotlib", "numpy")


def missing_train_extra() -> List[str]:
    """The packages of the ``train`` extra that are not installed (the library itself needs none)."""
    import importlib.util

    return [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``elas-compile`` console script and ``python -m elas_compile``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    missing = missing_train_extra() if command in ("train", "plot", "bench") else []
    if missing:
        _error(command, f"the CLI needs {', '.join(missing)}: pip install \"elas-compile[train]\"")
        return 2
    try:
        try:
            ns = build_parser().parse_args(argv)
        except SystemExit as e:  # --help / --version
            return int(e.code or 0)
        if ns.command is None:
            build_parser().print_help()
            return 2
        if ns.command == "train":
            return cmd_train(ns, argv[1:])
        if ns.command == "plot":
            return cmd_plot(ns)
        if ns.command == "build-kernels":
            from elas_compile.kernels.cutlass.build import cmd_build_kernels

            return cmd_build_kernels(ns)
        from elas_compile.train.bench import cmd_bench

        return cmd_bench(ns)
    except user_errors() as e:
        from elas_compile.train.distributed import PeerError

        if isinstance(e, PeerError):  # rank 0 failed and said why; the other ranks stop quietly
            return 2
        _error(command, first_line(e))
        return getattr(e, "exit_status", 2)  # Diverged: 1, Interrupted: 130
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        _error(command, f"cannot write {e.filename or 'a file'}: {e.strerror}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
