// elas::cutlass_grad_relu2_sparse24 on Hopper (masked mode): from one CUTLASS 3 GEMM dS = g @ W,
//   dy = dS * 2 sqrt(S) at the positions S keeps, 0 elsewhere   (bf16, M x N)
//   S  = the dense 2:4 matrix of `packed`                        (bf16, M x N)
// g: M x K row-major, W: K x N row-major (the down projection's V factor), packed: the
// cuSPARSELt-layout S of the forward (kernels/cslt_layout.py). dS never reaches memory.
//
// The epilogue (Relu2GradDirect) works on the warpgroup's wgmma accumulators directly, as the up
// kernel's does, so the two consumer warpgroups' epilogues may overlap (gemm_sm90.cuh): each thread
// loads, before its tile's MMA (the kernel's prefetch call), for every 64-row x 32-column block of
// the tile its 16 bytes of kept values and its metadata word from global memory, expands them into
// the accumulator layout (expand_block: 7 shuffles), computes dy, and after a 4 x 4 transpose inside
// each quad stores 16 contiguous bytes of S and of dy per row. It replaced CUTLASS's collective
// epilogue with a visitor node that had the producer warp copy the compressed S into shared memory
// and TMA stores for dy and S, whose epilogues took turns (docs/kernels.md).
#include <cstdint>
#include <cuda_bf16.h>

#include "gemm_sm90.cuh"
#include "sparse24_epilogue.cuh"

using namespace cute;
using BF16 = cutlass::bfloat16_t;

namespace elas {

// sqrt.approx (one MUFU op, sqrt(0) = 0), as Triton's tl.sqrt in the default path. The IEEE sqrtf
// ran a special-case branch and subroutine call for every element (Nsight Compute: a third of the
// epilogue's issue slots).
__device__ __forceinline__ float approx_sqrt(float x) {
  float y;
  asm("sqrt.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// dy = dS * 2 sqrt(S) for a column pair (S: a bf16 pair, the low half first), rounded to bf16
__device__ __forceinline__ uint32_t grad_pair(float ds0, float ds1, uint32_t s) {
  float const s0 = __uint_as_float(s << 16), s1 = __uint_as_float(s & 0xffff0000u);
  __nv_bfloat162 p = __floats2bfloat162_rn(ds0 * 2.f * approx_sqrt(s0), ds1 * 2.f * approx_sqrt(s1));
  return *reinterpret_cast<uint32_t*>(&p);
}

// v[j] of lane q = lane % 4 (its column pair of 8-column chunk j) becomes v[p] = lane p's v[q]: after
// the 4 x 4 transpose inside the quad, lane q holds chunk q's 8 contiguous columns. Two rounds: the
// elements whose index differs from q in bit 0, then bit 1, move to the partner lane.
__device__ __forceinline__ void quad_transpose(uint32_t (&v)[4], int lane) {
  bool const b0 = lane & 1, b1 = lane & 2;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    uint32_t const got = __shfl_xor_sync(0xffffffffu, b0 ? v[2 * i] : v[2 * i + 1], 1);
    if (b0) v[2 * i] = got; else v[2 * i + 1] = got;
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    uint32_t const got = __shfl_xor_sync(0xffffffffu, b1 ? v[i] : v[i + 2], 2);
    if (b1) v[i] = got; else v[i + 2] = got;
  }
}

// rows r (even slots) and r + 8 (odd slots) of one 32-column block, slots as in sparse24_epilogue.cuh,
// stored as 16 contiguous bytes per row (row-major M x N bf16, as N / 2 bf16 pairs per row)
__device__ __forceinline__ void store_block(uint32_t* out, uint32_t const (&slots)[8], int row, int col, int N,
                                            int lane, bool inside) {
  uint32_t lo[4] = {slots[0], slots[2], slots[4], slots[6]}, hi[4] = {slots[1], slots[3], slots[5], slots[7]};
  quad_transpose(lo, lane);
  quad_transpose(hi, lane);
  if (inside) {
    uint32_t* p = out + size_t(row) * (N / 2) + (col + 8 * (lane & 3)) / 2;
    *reinterpret_cast<uint4*>(p) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
    *reinterpret_cast<uint4*>(p + size_t(4) * N) = make_uint4(hi[0], hi[1], hi[2], hi[3]);  // row + 8
  }
}

struct GradOutputs {
  uint32_t* dy = nullptr;  // M x N bf16, as bf16 pairs
  uint32_t* s = nullptr;   // may be null: S is not stored (a dV GEMM that reads the compressed S)
};

// StoreS: whether the epilogue stores the dense S (a compile-time choice: a run-time test on
// params.s cost the kernel 3%, gpu_session81.sh)
template <bool StoreS>
struct Relu2GradDirect : Sparse24Direct<uint32_t const, uint16_t const, GradOutputs> {
  using Base = Sparse24Direct<uint32_t const, uint16_t const, GradOutputs>;
  using Base::Base;
  using Base::params;
  static constexpr int TM = decltype(size<0>(sm90::Tile{}))::value, TN = decltype(size<1>(sm90::Tile{}))::value;
  static constexpr int HM = TM / 64, NB = TN / 32;
  // this thread's compressed S of its tile, loaded before the tile's MMA: for every 64-row half hm
  // and 32-column block b, 16 bytes of kept values and one metadata word of its owned row
  uint4 in[HM][NB];
  uint32_t word[HM][NB];

  // M and N are multiples of 64: a 64-row half and a 32-column block are inside or outside for the
  // whole warp
  CUTLASS_DEVICE static bool inside(int row, int col, int M, int N) { return row < M && col < N; }

  template <class ProblemShapeMNKL, class BlockShapeMNK, class BlockCoordMNKL>
  CUTLASS_DEVICE void prefetch(ProblemShapeMNKL const& problem_shape_mnkl, BlockShapeMNK const&,
                               BlockCoordMNKL const& blk_coord, int thread_idx) {
    int const M = get<0>(problem_shape_mnkl), N = get<1>(problem_shape_mnkl);
    auto [r0, c0] = origin<TM, TN>(blk_coord, thread_idx);
    int const lane = thread_idx & 31;
    bool const odd = lane & 1, high = lane & 2;
    int const own = r0 + (odd ? 8 : 0), slot = ((lane >> 1) & 1) + (odd ? 2 : 0), n0 = c0 & ~31;
    CUTLASS_PRAGMA_UNROLL
    for (int hm = 0; hm < HM; ++hm) {
      CUTLASS_PRAGMA_UNROLL
      for (int b = 0; b < NB; ++b) {
        int const row = own + 64 * hm, col = n0 + 32 * b;
        bool const ok = inside(row, col, M, N);
        auto const* values = reinterpret_cast<uint8_t const*>(params.values) + size_t(row) * N + col + (high ? 16 : 0);
        in[hm][b] = ok ? __ldg(reinterpret_cast<uint4 const*>(values)) : make_uint4(0, 0, 0, 0);
        word[hm][b] = ok ? uint32_t(params.meta[meta_word(row & ~8, col, slot, N)]) : 0u;
      }
    }
  }

  template <class ProblemShapeMNKL, class BlockShapeMNK, class BlockCoordMNKL, class FrgEngine, class FrgLayout,
            class TiledMma, class ResidueMNK>
  CUTLASS_DEVICE void operator()(ProblemShapeMNKL problem_shape_mnkl, BlockShapeMNK blk_shape, BlockCoordMNKL blk_coord,
                                 cute::Tensor<FrgEngine, FrgLayout> const& acc, TiledMma tiled_mma, ResidueMNK,
                                 int thread_idx, char*) {
    static_assert(decltype(size<0>(blk_shape))::value == TM && decltype(size<1>(blk_shape))::value == TN);
    int const M = get<0>(problem_shape_mnkl), N = get<1>(problem_shape_mnkl);
    auto [r0, c0] = acc_origin<TM, TN>(problem_shape_mnkl, blk_shape, blk_coord, acc, tiled_mma, thread_idx);
    int const lane = thread_idx & 31, n0 = c0 & ~31;
    CUTLASS_PRAGMA_UNROLL
    for (int hm = 0; hm < HM; ++hm) {
      CUTLASS_PRAGMA_UNROLL
      for (int b = 0; b < NB; ++b) {
        int const row = r0 + 64 * hm, col = n0 + 32 * b;
        uint32_t s[8], dy[8];
        expand_block(in[hm][b], word[hm][b], lane, s);  // (the shuffles run inside or outside)
        CUTLASS_PRAGMA_UNROLL
        for (int k = 0; k < 8; ++k) {  // slot k = 2 j + rr of column block jj = 4 b + j
          int const i = acc_index<TN>(hm, b, k);
          dy[k] = grad_pair(acc(i), acc(i + 1), s[k]);
        }
        if constexpr (StoreS) store_block(params.s, s, row, col, N, lane, inside(row, col, M, N));
        store_block(params.dy, dy, row, col, N, lane, inside(row, col, M, N));
      }
    }
  }
};

// cluster 1 x 2 (g multicast to the two CTAs of an M row): 16384 x 4096 x 256 0.143 ms, 16384 x 8192 x 512
// 0.325, against 0.145 / 0.331 with 2 x 1 and 0.148 / 0.341 with 2 x 2 (gpu_session74.sh)
template <bool StoreS>  // W: K x N row-major
using GradGemm = typename sm90::ConcurrentGemm<cutlass::layout::RowMajor, Relu2GradDirect<StoreS>, Shape<_1, _2, _1>>::Gemm;

template <bool StoreS>
int grad_gemm(const void* g, const void* w, const void* packed, void* dy, void* s,
              int M, int N, int K, int* err, int check, int sm_count, cudaStream_t stream) {
  using Gemm = GradGemm<StoreS>;
  auto [sa, sb, sc, sd] = sm90::packed_strides<Gemm>(M, N, K);
  typename Relu2GradDirect<StoreS>::Arguments epi{{static_cast<uint32_t*>(dy), static_cast<uint32_t*>(s)},
                                                  static_cast<uint32_t const*>(packed),
                                                  static_cast<uint16_t const*>(packed) + size_t(M) * N / 2, err, check};
  typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm, {M, N, K, 1},
                                {static_cast<const BF16*>(g), sa, static_cast<const BF16*>(w), sb},
                                epi, cutlass::KernelHardwareInfo{0, sm_count}};
  return sm90::launch<Gemm>(args, stream);
}

int grad_relu2_sparse24(const void* g, const void* w, const void* packed, void* dy, void* s,
                        int M, int N, int K, int* err, int check, int sm_count, cudaStream_t stream) {
  return s ? grad_gemm<true>(g, w, packed, dy, s, M, N, K, err, check, sm_count, stream)
           : grad_gemm<false>(g, w, packed, dy, s, M, N, K, err, check, sm_count, stream);
}

}  // namespace elas

extern "C" {

// dy and s: M x N bf16 each (s may be null: S not stored); packed: the M x N compressed S; err: one int on the device.
// Returns 0, or 1 (shape not supported), 2 (initialize failed), 3 (launch failed).
int elas_grad_relu2_sparse24(const void* g, const void* w, const void* packed, void* dy, void* s,
                             int M, int N, int K, int* err, int check, int sm_count, void* stream) {
  return elas::grad_relu2_sparse24(g, w, packed, dy, s, M, N, K, err, check, sm_count,
                                   static_cast<cudaStream_t>(stream));
}

}  // extern "C"
