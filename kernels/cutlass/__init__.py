"""Optional CUTLASS kernels for Hopper: CUDA sources (``*.cu``, ``*.cuh``), their build
(``build``, ``pingpong``) and the ops that load the library (``ops``)."""
