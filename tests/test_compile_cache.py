"""Kernel choice is part of the compiled graph: one Inductor cache directory, successive processes
asking for other kernels, each runs what it asked for (a cache keyed without the choice replayed
the first process's path)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    import elas_compile

    class MLP(torch.nn.Module):
        def __init__(self, d, f):
            super().__init__()
            self.gate_proj, self.up_proj = torch.nn.Linear(d, f, bias=False), torch.nn.Linear(d, f, bias=False)
            self.down_proj = torch.nn.Linear(f, d, bias=False)

        def forward(self, x):
            return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))

    torch.manual_seed(0)
    d = 64
    model = torch.nn.Sequential(MLP(d, 128)).to(torch.bfloat16)
    config = elas_compile.ELASConfig(rank=16, dense_warmup_steps=0, kernels=sys.argv[1])
    elas_compile.apply(model, config)
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(128, d, dtype=torch.bfloat16, requires_grad=True)
    compiled(x).float().square().mean().backward()  # compiles
    with torch.profiler.profile() as prof:  # the ops the compiled code calls
        compiled(x).float().square().mean().backward()
    from torch._dynamo.utils import counters
    ops = sorted({e.name for e in prof.events() if e.name.startswith("elas::")})
    print(json.dumps({"ops": ops, "cache_hits": counters["inductor"]["fxgraph_cache_hit"]}))
""")


@pytest.mark.slow
def test_successive_processes_in_one_cache_run_the_kernels_they_ask_for(tmp_path):
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"), ELAS_FUSED_ON_CPU="1",
               TORCHINDUCTOR_FORCE_DISABLE_CACHES="0")
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    ran, hits = {}, {}
    for i, kernels in enumerate(["triton", "reference", "cutlass", "triton"]):
        out = subprocess.run([sys.executable, str(script), kernels], env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        ran[i], hits[i] = set(result["ops"]), result["cache_hits"]
    assert "elas::cslt_mm" in ran[0] and not any("cutlass" in op for op in ran[0])
    assert "elas::relu2_sparsify24" in ran[1] and "elas::cslt_mm" not in ran[1]
    assert {"elas::cslt_mm", "elas::cutlass_up_relu2_sparse24", "elas::cutlass_grad_relu2_sparse24"} <= ran[2]
    assert ran[3] == ran[0]  # the first process's choice again...
    assert hits[0] == hits[1] == hits[2] == 0 and hits[3] > 0  # ...served from the shared cache
