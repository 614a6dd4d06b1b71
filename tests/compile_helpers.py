"""What the tests of the Inductor passes share."""
import contextlib

import torch
from torch._dynamo.utils import counters

from elas_compile.passes import inductor


@contextlib.contextmanager
def fresh_compile(install=None):
    """A clean Dynamo state, ``install()`` (one of ``elas_compile.passes.inductor``'s install
    functions) called if given, no FX graph cache (a cache hit skips the passes and their
    counters); everything removed afterwards."""
    torch._dynamo.reset()
    counters.clear()
    if install is not None:
        install()
    try:
        with torch._inductor.config.patch(fx_graph_cache=False):
            yield
    finally:
        inductor.uninstall()
        torch._dynamo.reset()
