// What the CUTLASS 2:4 epilogues share: the ELAS 2:4 rule on one group, its inverse, and the
// register layout they assume (checked at run time when asked).
//
// Layout assumed (wgmma accumulators, 64 x 32 epilogue subtile per 128-thread warpgroup): lane t of
// warp w holds, as 8 column pairs ("slots"), rows 16w + t/4 (slot 2j) and +8 (slot 2j+1), columns
// 8j + 2(t%4) and +1, j = 0..3. Lanes t and t^1 hold the two column pairs of one group of 4; the
// even lane owns row r, the odd lane row r+8 (it ranks / expands that row's groups). Lanes t and
// t^2 of one owned row hold the groups 2j and 2j+1: after one exchange each has 16 contiguous bytes
// of compressed values (lane with t&2 == 0: groups 0..3 of the subtile, else 4..7). Even lanes hold
// the metadata word (g & 3) = h (h = (t >> 1) & 1), odd lanes h + 2 (cslt_layout.py's sm90 layout).
#pragma once
#include <cstdint>

#include "cute/tensor.hpp"

namespace elas {

// lo: elements 0 (low half) and 1, hi: elements 2 and 3, non-negative bf16 (which order like their
// bit patterns). Keeps the 2 largest, ties to the lower index (kernels/reference.py); returns the
// kept pair (lower index in the low half) and sets nib = idx0 | idx1 << 2, idx0 < idx1.
// Keys (value << 2 | 3 - index) are unique and order like the rule; a 4-input tournament finds
// the top 2 in 6 min/max.
__host__ __device__ __forceinline__ uint32_t select24(uint32_t lo, uint32_t hi, uint32_t& nib) {
  uint32_t const k0 = (lo << 2 & 0x3fffcu) | 3u, k1 = (lo >> 14 & 0x3fffcu) | 2u;
  uint32_t const k2 = (hi << 2 & 0x3fffcu) | 1u, k3 = hi >> 14 & 0x3fffcu;
  uint32_t const a = k0 > k1 ? k0 : k1, b = k0 > k1 ? k1 : k0, c = k2 > k3 ? k2 : k3, d = k2 > k3 ? k3 : k2;
  uint32_t const t1 = a > c ? a : c, ac = a > c ? c : a, bd = b > d ? b : d, t2 = ac > bd ? ac : bd;
  bool const t1_first = (t1 & 3u) > (t2 & 3u);  // the lower index has the larger low bits
  uint32_t const first = t1_first ? t1 : t2, second = t1_first ? t2 : t1;
  nib = (3u - (first & 3u)) | (3u - (second & 3u)) << 2;
  return (first >> 2) | (second >> 2) << 16;
}

// The inverse: the dense group (elements 0..3 as 16-bit fields, element 0 lowest) of a kept pair.
__host__ __device__ __forceinline__ uint64_t expand24(uint32_t kept, uint32_t nib) {
  return uint64_t(kept & 0xffffu) << (16 * (nib & 3)) | uint64_t(kept >> 16) << (16 * (nib >> 2));
}

// Index of the 16-bit metadata word of (row r, group slot g = word's g & 3) in the sm90 layout.
__host__ __device__ __forceinline__ size_t meta_word(int r, int n_tile, int g, int n) {
  size_t const tile = size_t(r / 64) * (n / 32) + n_tile / 32;
  return tile * 128 + g + 4 * (r & 7) + 32 * ((r >> 4) & 3);
}

// Whether this thread's subtile coordinates (crd: coalesced (m, n[, l]) per element, 16 elements)
// are the layout above.
template <class Crd>
__device__ __forceinline__ bool layout_ok(Crd const& crd) {
  int const lane = threadIdx.x & 31;
  int const m0 = cute::get<0>(crd(0)), n0 = cute::get<1>(crd(0));
  bool ok = (m0 % 64) == 16 * ((threadIdx.x >> 5) & 3) + (lane >> 2) && (n0 % 32) == 2 * (lane & 3);
#pragma unroll
  for (int s = 0; s < 8; ++s) {
    ok = ok && cute::get<0>(crd(2 * s)) == m0 + 8 * (s & 1) && cute::get<1>(crd(2 * s)) == n0 + 8 * (s >> 1) &&
         cute::get<0>(crd(2 * s + 1)) == m0 + 8 * (s & 1) && cute::get<1>(crd(2 * s + 1)) == n0 + 8 * (s >> 1) + 1;
  }
  return ok;
}

}  // namespace elas
