import os
import warnings

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message=".*register_constant.*")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    """Each test starts seeded, with a clean Dynamo state and Inductor's custom passes as they were:
    a test that enables the step passes process-wide (the CLI and the benchmarks do) leaves none."""
    from torch._inductor import config as inductor_config

    torch.manual_seed(0)
    torch._dynamo.reset()
    passes = (inductor_config.pre_grad_custom_pass, inductor_config.post_grad_custom_post_pass)
    yield
    inductor_config.pre_grad_custom_pass, inductor_config.post_grad_custom_post_pass = passes


@pytest.fixture
def one_thread():
    """Tiny matrices: one thread is as fast, and immune to oversubscription when other jobs run."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def session_elas_cache(tmp_path_factory, monkeypatch):
    """Tokenizer/corpus cache shared by the tests of a session (not the user's ~/.cache)."""
    monkeypatch.setenv("ELAS_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "elas_cache"))


def write_docs_text(tmp_path_factory, chars: int) -> str:
    """A text file of the first ``chars`` characters of Python's pydoc topics."""
    from pydoc_data.topics import topics

    path = tmp_path_factory.mktemp("data") / "docs.txt"
    path.write_text("\n\n".join(topics[k] for k in sorted(topics))[:chars])
    return str(path)
