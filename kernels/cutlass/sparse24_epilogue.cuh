// What the CUTLASS 2:4 epilogues (register-only, on the wgmma accumulators) share: the ELAS 2:4
// rule on one group, its inverse, the register layout they assume (checked at run time when asked)
// and CUTLASS's hooks around them.
//
// Layout assumed (wgmma accumulators, each 64-row x 32-column block of a 128-thread warpgroup's
// tile): lane t of warp w holds, as 8 column pairs ("slots"), rows 16w + t/4 (slot 2j) and +8
// (slot 2j+1), columns 8j + 2(t%4) and +1, j = 0..3. Lanes t and t^1 hold the two column pairs of one group of 4; the
// even lane owns row r, the odd lane row r+8 (it ranks / expands that row's groups). Lanes t and
// t^2 of one owned row hold the groups 2j and 2j+1: after one exchange each has 16 contiguous bytes
// of compressed values (lane with t&2 == 0: groups 0..3 of the block, else 4..7). Even lanes hold
// the metadata word (g & 3) = h (h = (t >> 1) & 1), odd lanes h + 2 (cslt_layout.py's sm90 layout).
#pragma once
#include <cstdint>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"

namespace elas {

// lo: elements 0 (low half) and 1, hi: elements 2 and 3, non-negative bf16 (which order like their
// bit patterns). Keeps the 2 largest, ties to the lower index (kernels/reference.py); returns the
// kept pair (lower index in the low half) and sets nib = idx0 | idx1 << 2, idx0 < idx1.
// Keys (value << 16 | 3 - index) are unique and order like the rule; a 4-input tournament finds
// the top 2 in 8 min/max. The 16-bit value fields stay in place and one byte permute makes the
// pair (checked against 18-bit keys on 20M cases: the same results, ~20% fewer instructions).
__host__ __device__ __forceinline__ uint32_t select24(uint32_t lo, uint32_t hi, uint32_t& nib) {
  uint32_t const k0 = lo << 16 | 3u, k1 = (lo & 0xffff0000u) | 2u, k2 = hi << 16 | 1u, k3 = hi & 0xffff0000u;
  uint32_t const a = k0 > k1 ? k0 : k1, b = k0 > k1 ? k1 : k0, c = k2 > k3 ? k2 : k3, d = k2 > k3 ? k3 : k2;
  uint32_t const t1 = a > c ? a : c, ac = a > c ? c : a, bd = b > d ? b : d, t2 = ac > bd ? ac : bd;
  uint32_t const x = t1 & 3u, y = t2 & 3u;  // 3 - index: the lower index has the larger low bits
  nib = ((x > y ? y : x) << 2 | (x > y ? x : y)) ^ 0xfu;
#ifdef __CUDA_ARCH__
  return __byte_perm(t1, t2, x > y ? 0x7632u : 0x3276u);  // the two value fields, lower index first
#else
  return x > y ? (t1 >> 16 | (t2 & 0xffff0000u)) : (t2 >> 16 | (t1 & 0xffff0000u));
#endif
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

// The dense S of one 32-column block from its compressed form, the inverse of the up kernel's
// store: `in` is this lane's 16 bytes of kept values of its owned row (lanes with t & 2 == 0:
// groups 0..3, else 4..7), `word` its metadata word (slot (g & 3) = h + (odd ? 2 : 0)). Returns in
// out[2j] (row r) and out[2j + 1] (row r + 8) this lane's bf16 column pair of column block j.
__device__ __forceinline__ void expand_block(uint4 in, uint32_t word, int lane, uint32_t (&out)[8]) {
  bool const odd = lane & 1, high = lane & 2;
  // kept pairs of the owned row's groups 2j + h (undo the store's exchange between t and t^2)
  uint32_t const s0 = __shfl_xor_sync(0xffffffffu, high ? in.x : in.y, 2);
  uint32_t const s1 = __shfl_xor_sync(0xffffffffu, high ? in.z : in.w, 2);
  uint32_t const kept[4] = {high ? s0 : in.x, high ? s1 : in.z, high ? in.y : s0, high ? in.w : s1};
  uint32_t const other = __shfl_xor_sync(0xffffffffu, word, 1);
  uint32_t const word_a = odd ? other : word, word_b = odd ? word : other;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint32_t const nib = ((j & 1) ? word_b : word_a) >> ((odd ? 4 : 0) + (j >= 2 ? 8 : 0)) & 0xfu;
    uint64_t const group = expand24(kept[j], nib);
    uint32_t const lo = uint32_t(group), hi = uint32_t(group >> 32);
    uint32_t const got = __shfl_xor_sync(0xffffffffu, odd ? lo : hi, 1);
    out[2 * j] = odd ? got : lo;      // row r: the even lane's pair is the group's first
    out[2 * j + 1] = odd ? hi : got;  // row r + 8
  }
}

// What both 2:4 epilogues share: their arguments (the compressed buffer's two regions, `Word`
// uint32_t or const for the kernel that reads them, plus the kernel's own `Outputs`), CUTLASS's
// static hooks for a register-only epilogue (Sm90TmaWarpSpecializedAdapter; no workspace; M and N
// multiples of 64), and where this thread's accumulators sit.
struct NoOutputs {};

template <class Word, class MetaWord, class Outputs = NoOutputs>
struct Sparse24Direct {
  struct SharedStorage {};
  struct Arguments : Outputs {
    Word* values = nullptr;  // M x N/4 words: the kept pair of each group of 4
    MetaWord* meta = nullptr;
    int* err = nullptr;      // set when `check` finds another register layout
    int check = 0;
  };
  using Params = Arguments;
  using ElementC = void;
  using StrideC = cute::Stride<int64_t, cute::Int<1>, int64_t>;
  using ElementD = void;
  using StrideD = StrideC;
  using ThreadEpilogueOp = void;  // (GemmUniversalAdapter names it)
  using TensorStorage = SharedStorage;

  CUTLASS_HOST_DEVICE Sparse24Direct(Params const& p, SharedStorage const& = SharedStorage()) : params(p) {}
  Params params;

  template <class ProblemShape>
  static constexpr Params to_underlying_arguments(ProblemShape const&, Arguments const& args, void*) { return args; }
  template <class ProblemShape>
  static bool can_implement(ProblemShape const& shape, Arguments const&) {
    auto [M, N, K, L] = cute::append<4>(shape, 1);
    return M % 64 == 0 && N % 64 == 0 && L == 1;
  }
  template <class ProblemShape>
  static size_t get_workspace_size(ProblemShape const&, Arguments const&) { return 0; }
  template <class ProblemShape>
  static cutlass::Status initialize_workspace(ProblemShape const&, Arguments const&, void*, cudaStream_t,
                                              cutlass::CudaHostAdapter* = nullptr) {
    return cutlass::Status::kSuccess;
  }

  // Loads an epilogue wants in flight before its tile's MMA (the derived ping-pong kernel calls it
  // before every tile's MMA, kernels/cutlass_pingpong.py); none by default.
  template <class ProblemShapeMNKL, class BlockShapeMNK, class BlockCoordMNKL>
  CUTLASS_DEVICE void prefetch(ProblemShapeMNKL const&, BlockShapeMNK const&, BlockCoordMNKL const&, int) {}

  // This thread's first accumulator's (row, column) of the TM x TN tile at blk_coord: accumulator
  // i = e0 + 2 rr + 4 jj + (TN / 2) hm sits at row r0 + 64 hm + 8 rr, column c0 + 8 jj + e0.
  template <int TM, int TN, class BlockCoordMNKL>
  CUTLASS_DEVICE static cute::tuple<int, int> origin(BlockCoordMNKL const& blk_coord, int thread_idx) {
    int const lane = thread_idx & 31, warp = (thread_idx >> 5) & 3;
    return {int(cute::get<0>(blk_coord)) * TM + 16 * warp + (lane >> 2), int(cute::get<1>(blk_coord)) * TN + 2 * (lane & 3)};
  }

  // The accumulator (first of its column pair) of slot s (= 2 j + rr: row r + 8 rr, column block
  // j of the 32-column block b) of the 64-row half hm, in the layout origin() describes.
  template <int TN>
  CUTLASS_DEVICE static constexpr int acc_index(int hm, int b, int s) {
    return 2 * (s & 1) + 4 * (4 * b + (s >> 1)) + (TN / 2) * hm;
  }

  // origin(), and with `check` set, that layout verified against CUTLASS's partition of the tile
  // (raises *err otherwise).
  template <int TM, int TN, class ProblemShapeMNKL, class BlockShapeMNK, class BlockCoordMNKL, class Acc, class TiledMma>
  CUTLASS_DEVICE cute::tuple<int, int> acc_origin(ProblemShapeMNKL shape, BlockShapeMNK blk_shape,
                                                  BlockCoordMNKL blk_coord, Acc const& acc, TiledMma tiled_mma,
                                                  int thread_idx) const {
    static_assert(TM % 64 == 0 && TN % 32 == 0 && decltype(cute::size(acc))::value == TM * TN / 128,
                  "expects one warpgroup's wgmma accumulators of a TM x TN tile");
    int const M = cute::get<0>(shape), N = cute::get<1>(shape);
    auto [m_coord, n_coord, k_coord, l_coord] = blk_coord;
    auto [r0, c0] = origin<TM, TN>(blk_coord, thread_idx);
    if (params.check) {
      auto thr_mma = tiled_mma.get_thread_slice(thread_idx);
      cute::Tensor cD = cute::local_tile(cute::make_identity_tensor(cute::make_shape(M, N)),
                                         cute::take<0, 2>(blk_shape), cute::make_coord(m_coord, n_coord));
      cute::Tensor tCcD = thr_mma.partition_C(cD);
      bool ok = true;
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < cute::size(acc); ++i) {
        int e0 = i & 1, rr = (i >> 1) & 1, jj = (i >> 2) % (TN / 8), hm = i / (TN / 2);
        ok = ok && cute::get<0>(tCcD(i)) == r0 + 64 * hm + 8 * rr && cute::get<1>(tCcD(i)) == c0 + 8 * jj + e0;
      }
      if (!ok) atomicOr(params.err, 1);
    }
    return {r0, c0};
  }
};

}  // namespace elas
