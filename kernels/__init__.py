"""Kernels behind the ``torch.ops.elas`` ops: pure-PyTorch references (run anywhere) and
Triton kernels (CUDA). Installed as ``elas_compile.kernels``."""
