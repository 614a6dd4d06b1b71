"""Triton kernels of the 2:4 FFN middle and the ``torch.ops.elas`` ops that launch them."""
