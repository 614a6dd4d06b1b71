"""``python -m benchmarks SUITE [options]``: run one benchmark suite, print its table, write its
results, metadata, plot and report (``benchmarks/outputs.py``). ``python -m benchmarks`` lists the
suites; ``python -m benchmarks SUITE -h`` gives a suite's options."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from benchmarks.environment import describe, run_meta
from benchmarks.outputs import text_table, write_all
from benchmarks.suites import SUITES, load

DEFAULT_ROOT = Path(__file__).resolve().parent


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help="where results/ and reports/ go (default: the benchmarks folder)")
    p.add_argument("--tag", help="appended to the run's name, e.g. 350m: <suite>_<gpu>_<date>_<tag>")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats; their median is reported (default 3)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                   help="auto: the GPU where there is one")
    p.add_argument("--commit", metavar="SHA[-dirty]",
                   help="the commit to record where the tree has no git metadata (a copy on a GPU machine): "
                        "git rev-parse HEAD where it came from, -dirty appended if tracked files differed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="suite", metavar="SUITE")
    for name in SUITES:
        suite = load(name)
        sp = sub.add_parser(name, help=suite.DESCRIPTION, description=suite.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(sp)
        suite.add_arguments(sp)
    return p


def list_suites() -> str:
    lines = ["suites (python -m benchmarks SUITE -h for options):"]
    lines += [f"  {name:<8} {load(name).DESCRIPTION}" for name in SUITES]
    return "\n".join(lines)


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks: --device cuda was asked for but no CUDA GPU is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.suite is None:
        print(list_suites())
        return 0
    if args.repeats < 1:
        raise SystemExit("benchmarks: --repeats must be >= 1")
    device = resolve_device(args.device)
    suite = load(args.suite)
    refusal = suite.refuse(args, device)
    if refusal:
        print(f"{args.suite}: {refusal}", file=sys.stderr)
        return 2
    meta = dict(run_meta(args.suite, argv, device, args.commit), description=suite.DESCRIPTION)
    print(f"benchmarks {args.suite} on {describe(meta)}", flush=True)
    result = suite.run(args, device)
    print()
    print(text_table(result.rows, result.table_columns))
    for line in result.notes:
        print(f"note: {line}")
    paths = write_all(result, meta, args.root, args.tag)
    print(f"wrote {paths['folder']}/ ({', '.join(p.name for k, p in paths.items() if k not in ('folder', 'report'))}) "
          f"and {paths['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
