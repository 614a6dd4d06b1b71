// elas::up_relu2_sparse24 on Hopper: packed = compress24(relu(h @ U^T) ** 2) from one CUTLASS 3 GEMM.
//
// h: M x K row-major, U: N x K row-major (the up projection's U factor), bf16. The GEMM is a
// TMA warp-specialized ping-pong kernel (128 x 128 x 64 tiles, cluster 2 x 1) whose epilogue never
// writes y: Relu2Sparse24Direct squares the fp32 accumulators in registers, keeps the 2 largest of
// every 4 consecutive columns (ties: the lower column) and stores the kept values and their
// metadata straight into the cuSPARSELt operand layout of kernels/cslt_layout.py:
//   values   packed[0 : M*N/2]           row-major M x N/2, the two kept values of each group
//   metadata packed[M*N/2 : M*N*9/16]    16-bit words, tiles of 64 rows x 32 columns; the word
//            of (row r, group g), r % 16 < 8, g % 8 < 4, holds the nibbles of (r, g), (r+8, g),
//            (r, g+4), (r+8, g+4) and sits at tile*128 + (g&3) + 4*(r&7) + 32*((r>>4)&3).
//
// The epilogue is not CUTLASS's collective epilogue: it works on the warpgroup's wgmma accumulators
// directly (no shared memory, no named barrier, no subtile loop), one 64-row x 32-column block (one
// metadata tile) at a time. In the accumulator layout lane t of warp w holds rows 16w + t/4 (slot 2j)
// and +8 (slot 2j+1), columns 8j + 2(t%4) and +1 of each 32-column block (j = 0..3): lanes t and t^1
// hold the two column pairs of a group. The even lane finishes row r, the odd lane row r+8 (one
// shuffle each), so every group is ranked once; two more shuffles give each thread 16 contiguous
// bytes of values and one 16-bit metadata word to store. Because the epilogue shares nothing between
// the two consumer warpgroups, the kernel is CUTLASS's ping-pong kernel with the epilogues allowed to
// overlap (kernels/cutlass_pingpong.py derives it at build time): at K = 256 the epilogue is longer
// than the main loop, and overlapping them took 16384 x 4096 x 256 from 0.115 to 0.092 ms
// (docs/kernels.md). With `check` set, the kernel also verifies the accumulator coordinates against
// CUTLASS's partition of the tile and raises *err otherwise.
//
// Built by elas_compile.kernels.cutlass_build into a shared library with a C entry point
// (loaded with ctypes: no torch headers, so one build serves any torch version).
#include <cstdint>
#include <cuda_bf16.h>

#include "gemm_sm90.cuh"
#include "sparse24_epilogue.cuh"

using namespace cute;
using BF16 = cutlass::bfloat16_t;

namespace elas {

// relu(a)², relu(b)² as a bf16 pair (a in the low half); NaN gives 0 (fmaxf: one instruction; the
// sign of a zero it keeps is squared away)
__device__ __forceinline__ uint32_t relu2_pair(float a, float b) {
  a = fmaxf(a, 0.f);
  b = fmaxf(b, 0.f);
  __nv_bfloat162 p = __floats2bfloat162_rn(a * a, b * b);
  return *reinterpret_cast<uint32_t*>(&p);
}

// One 32-column block of one owned row: words[2j + rr] is this lane's column pair of column block
// j (0..3) at row r (rr = 0) or r + 8 (rr = 1) (sparse24_epilogue.cuh's layout).
__device__ __forceinline__ void rank_store_block(uint32_t const (&words)[8], int m_row, int n_tile, int M, int N,
                                                 uint32_t* values, uint16_t* meta, int lane) {
  bool const odd = lane & 1, high = lane & 2;
  uint32_t got[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) got[j] = __shfl_xor_sync(0xffffffffu, odd ? words[2 * j] : words[2 * j + 1], 1);
  uint32_t kept[4];
  uint32_t part_a = 0, part_b = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint32_t mine = odd ? words[2 * j + 1] : words[2 * j];
    uint32_t nib;
    kept[j] = select24(odd ? got[j] : mine, odd ? mine : got[j], nib);
    uint32_t shift = (odd ? 4u : 0u) + (j >= 2 ? 8u : 0u);
    if (j & 1) part_b |= nib << shift; else part_a |= nib << shift;
  }
  uint32_t other = __shfl_xor_sync(0xffffffffu, odd ? part_a : part_b, 1);
  uint32_t word = (odd ? part_b : part_a) | other;
  // lanes t%4 in {0,2} (and {1,3}) hold groups h, h+2, h+4, h+6 of one row; swap so that the h = 0
  // lane has groups 0..3 and the h = 1 lane groups 4..7 (16 contiguous bytes each; four 4-byte
  // stores instead measured 35% slower: 0.409 vs 0.303 ms at 16384 x 8192 x 512)
  uint32_t s0 = __shfl_xor_sync(0xffffffffu, high ? kept[0] : kept[2], 2);
  uint32_t s1 = __shfl_xor_sync(0xffffffffu, high ? kept[1] : kept[3], 2);
  if (m_row < M && n_tile < N) {
    uint32_t* row = values + size_t(m_row) * (N / 4) + (n_tile / 4);
    uint4 out = high ? make_uint4(s0, kept[2], s1, kept[3]) : make_uint4(kept[0], s0, kept[1], s1);
    *reinterpret_cast<uint4*>(row + (high ? 4 : 0)) = out;
    meta[meta_word(m_row & ~8, n_tile, ((lane >> 1) & 1) + (odd ? 2 : 0), N)] = uint16_t(word);
  }
}

struct Relu2Sparse24Direct : Sparse24Direct<uint32_t, uint16_t> {
  using Sparse24Direct::Sparse24Direct;

  template <class ProblemShapeMNKL, class BlockShapeMNK, class BlockCoordMNKL, class FrgEngine, class FrgLayout,
            class TiledMma, class ResidueMNK>
  CUTLASS_DEVICE void operator()(ProblemShapeMNKL problem_shape_mnkl, BlockShapeMNK blk_shape, BlockCoordMNKL blk_coord,
                                 cute::Tensor<FrgEngine, FrgLayout> const& acc, TiledMma tiled_mma, ResidueMNK,
                                 int thread_idx, char*) {
    constexpr int TM = decltype(size<0>(blk_shape))::value, TN = decltype(size<1>(blk_shape))::value;
    int const M = get<0>(problem_shape_mnkl), N = get<1>(problem_shape_mnkl);
    auto [r0, c0] = acc_origin<TM, TN>(problem_shape_mnkl, blk_shape, blk_coord, acc, tiled_mma, thread_idx);
    int const lane = thread_idx & 31;
    bool const odd = lane & 1;
    CUTLASS_PRAGMA_UNROLL
    for (int hm = 0; hm < TM / 64; ++hm) {
      CUTLASS_PRAGMA_UNROLL
      for (int b = 0; b < TN / 32; ++b) {
        uint32_t words[8];
        CUTLASS_PRAGMA_UNROLL
        for (int s = 0; s < 8; ++s) {  // slot s = 2 j + rr of column block jj = 4 b + j
          int const i = acc_index<TN>(hm, b, s);
          words[s] = relu2_pair(acc(i), acc(i + 1));
        }
        rank_store_block(words, r0 + 64 * hm + (odd ? 8 : 0), (c0 & ~31) + 32 * b, M, N, params.values, params.meta, lane);
      }
    }
  }
};

using UpGemm = sm90::ConcurrentGemm<cutlass::layout::ColumnMajor, Relu2Sparse24Direct>::Gemm;  // U: N x K row-major

int up_relu2_sparse24(const void* h, const void* u, void* packed, int M, int N, int K, int* err, int check,
                      int sm_count, cudaStream_t stream) {
  auto [sa, sb, sc, sd] = sm90::packed_strides<UpGemm>(M, N, K);
  Relu2Sparse24Direct::Arguments store{
      {}, reinterpret_cast<uint32_t*>(packed), reinterpret_cast<uint16_t*>(packed) + size_t(M) * N / 2, err, check};
  typename UpGemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm, {M, N, K, 1},
                                  {static_cast<const BF16*>(h), sa, static_cast<const BF16*>(u), sb},
                                  store, cutlass::KernelHardwareInfo{0, sm_count}};
  return sm90::launch<UpGemm>(args, stream);
}

}  // namespace elas

extern "C" {

// the version of the entry points' arguments (bumped on any change; cutlass_ext.ABI); 4: the grad
// kernel's s may be null
int elas_cutlass_abi() { return 4; }

// packed must hold M*N*9/16 bf16 elements; err one int on the device (only written when check).
// Returns 0, or 1 (shape not supported), 2 (initialize failed), 3 (launch failed).
int elas_up_relu2_sparse24(const void* h, const void* u, void* packed, int M, int N, int K,
                           int* err, int check, int sm_count, void* stream) {
  return elas::up_relu2_sparse24(h, u, packed, M, N, K, err, check, sm_count, static_cast<cudaStream_t>(stream));
}

}  // extern "C"
