"""What the tests of the Inductor passes share."""
import contextlib

import torch
from torch._dynamo.utils import counters

from elas_compile.passes.compile import inductor


@contextlib.contextmanager
def fresh_compile(rope_tables: bool = False, layout_copies: bool = False):
    """A clean Dynamo state, the chosen step passes on (``elas_compile.step_passes``), no compile
    caches (a cache hit skips the passes and their counters); Dynamo reset afterwards."""
    torch._dynamo.reset()
    counters.clear()
    try:
        with torch._inductor.config.patch(force_disable_caches=True), \
                inductor.step_passes(rope_tables=rope_tables, layout_copies=layout_copies):
            yield
    finally:
        torch._dynamo.reset()
