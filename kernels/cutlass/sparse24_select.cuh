// The ELAS 2:4 rule on one group of 4 non-negative bf16 values (relu² outputs), as used by the
// CUTLASS epilogues: keep the 2 largest, ties to the lower index (kernels/reference.py).
// Non-negative bf16 values order like their bit patterns, so the ranking is 6 integer compares.
#pragma once
#include <cstdint>

namespace elas {

// lo: elements 0 (low half) and 1, hi: elements 2 and 3. Returns the kept pair (lower index in
// the low half) and sets nib = idx0 | idx1 << 2, idx0 < idx1 (the cuSPARSELt metadata nibble).
__host__ __device__ __forceinline__ uint32_t select24(uint32_t lo, uint32_t hi, uint32_t& nib) {
  uint32_t const v0 = lo & 0xffffu, v1 = lo >> 16, v2 = hi & 0xffffu, v3 = hi >> 16;
  // b_ij (i < j): element i beats element j
  int const b01 = v0 >= v1, b02 = v0 >= v2, b03 = v0 >= v3, b12 = v1 >= v2, b13 = v1 >= v3, b23 = v2 >= v3;
  // element q is kept when fewer than 2 others beat it
  uint32_t const mask = uint32_t((3 - b01 - b02 - b03) < 2) | uint32_t((b01 + 2 - b12 - b13) < 2) << 1 |
                        uint32_t((b02 + b12 + 1 - b23) < 2) << 2 | uint32_t((b03 + b13 + b23) < 2) << 3;
#ifdef __CUDA_ARCH__
  uint32_t const i0 = __ffs(mask) - 1, i1 = 31 - __clz(mask);
#else
  uint32_t const i0 = __builtin_ctz(mask), i1 = 31 - __builtin_clz(mask);
#endif
  nib = i0 | i1 << 2;
  uint64_t const all = uint64_t(lo) | uint64_t(hi) << 32;
  return uint32_t((all >> (16 * i0)) & 0xffffu) | uint32_t((all >> (16 * i1)) & 0xffffu) << 16;
}

}  // namespace elas
