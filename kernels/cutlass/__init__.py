"""Optional CUTLASS kernels for Hopper: CUDA sources (``*.cu``, ``*.cuh``), what their build needs
(``toolchain``), their build (``build``, ``pingpong``) and the ops that load the library (``ops``)."""
