"""The suites of ``python -m benchmarks``, by name. A suite is a module here with ``DESCRIPTION``
(one line), ``add_arguments(parser)``, ``refuse(args, device) -> str | None`` (why it cannot run
with these options here: printed as one line, nothing run) and
``run(args, device) -> benchmarks.outputs.SuiteResult``. A new suite is a new file and one line
of this table."""
from __future__ import annotations

import importlib
from types import ModuleType

SUITES = {
    "kernels": "benchmarks.suites.kernels",
    "ffn": "benchmarks.suites.ffn",
    "step": "benchmarks.suites.step",
    "memory": "benchmarks.suites.memory",
    "prefill": "benchmarks.suites.prefill",
    "wgrad24": "benchmarks.suites.wgrad24",
    "quality": "benchmarks.suites.quality",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(SUITES[name])
