// elas::up_relu2_sparse24 on Hopper: packed = compress24(relu(h @ U^T) ** 2) from one CUTLASS 3 GEMM.
//
// h: M x K row-major, U: N x K row-major (the up projection's U factor), bf16. The GEMM is a
// TMA warp-specialized ping-pong kernel (128 x 128 x 64 tiles, cluster 2 x 1: the fastest in
// benchmarks/cutlass_probe.cu, on par with cuBLAS at 16384 x 8192 x 512). Its epilogue never
// writes y: the visitor node Relu2Sparse24Store squares the accumulators, keeps the 2 largest of
// every 4 consecutive columns (ties: the lower column) and stores the kept values and their
// metadata straight into the cuSPARSELt operand layout of kernels/cslt_layout.py:
//   values   packed[0 : M*N/2]           row-major M x N/2, the two kept values of each group
//   metadata packed[M*N/2 : M*N*9/16]    16-bit words, tiles of 64 rows x 32 columns; the word
//            of (row r, group g), r % 16 < 8, g % 8 < 4, holds the nibbles of (r, g), (r+8, g),
//            (r, g+4), (r+8, g+4) and sits at tile*128 + (g&3) + 4*(r&7) + 32*((r>>4)&3).
//
// The epilogue subtile is 64 x 64: two 32-column blocks, each exactly one metadata tile, handled
// alike (64 x 32, EpilogueTileAuto, measured 0.30 vs 0.27 ms: docs/kernels.md). In the wgmma
// accumulator layout lane t of warp w holds rows 16w + t/4 (slot 2j) and
// +8 (slot 2j+1), columns 8j + 2(t%4) and +1 (j = 0..3): lanes t and t^1 hold the two column
// pairs of a group. The even lane finishes row r, the odd lane row r+8 (one shuffle each), so
// every group is ranked once; two more shuffles give each thread 16 contiguous bytes of values
// and one 16-bit metadata word to store. With `check` set, the kernel also verifies these
// coordinates against the epilogue's own coordinate tensor and raises *err otherwise.
//
// Built by elas_compile.kernels.cutlass_build into a shared library with a C entry point
// (loaded with ctypes: no torch headers, so one build serves any torch version).
#include <cstdint>

#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"

#include "gemm_sm90.cuh"
#include "sparse24_epilogue.cuh"

using namespace cute;
using BF16 = cutlass::bfloat16_t;

namespace elas {

struct Relu2Sparse24Store : Sparse24Node<uint32_t, uint16_t> {
  using ElementAux = BF16;  // what the collective epilogue calls D's element when D is void
  using Sparse24Node::Sparse24Node;

  template <class RTensor, class CTensor>
  struct ConsumerStoreCallbacks : Callbacks<RTensor, CTensor> {  // tC_rS: relu² of this subtile
    using Callbacks<RTensor, CTensor>::Callbacks;
    using Callbacks<RTensor, CTensor>::tC_rS;
    using Callbacks<RTensor, CTensor>::tC_cS;
    using Callbacks<RTensor, CTensor>::M;
    using Callbacks<RTensor, CTensor>::N;
    using Callbacks<RTensor, CTensor>::params;

    template <typename ElementAccumulator, typename ElementInput, int FragmentSize>
    CUTLASS_DEVICE auto visit(cutlass::Array<ElementAccumulator, FragmentSize> const& frg_acc, int epi_v, int, int,
                              cutlass::Array<ElementInput, FragmentSize> const& frg_input) {
      cutlass::Array<BF16, FragmentSize> sq;
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < FragmentSize; ++i) {
        float x = float(frg_input[i]) > 0.f ? float(frg_input[i]) : 0.f;
        sq[i] = BF16(x * x);
      }
      Tensor frg = recast<cutlass::Array<BF16, FragmentSize>>(coalesce(tC_rS));
      frg(epi_v) = sq;
      return frg_input;
    }

    CUTLASS_DEVICE void end_loop(int epi_m, int epi_n) {
      Tensor words = recast<uint32_t>(coalesce(tC_rS));  // slot s: column pair of (row r + 8(s&1), block s>>1)
      constexpr int Blocks = decltype(size(words))::value / 8;  // 32-column blocks of the subtile
      static_assert(Blocks * 8 == decltype(size(words))::value, "expects 64 x 32k epilogue subtiles per warpgroup");
      Tensor crd = coalesce(tC_cS(_, _, _, epi_m, epi_n));
      if (params->check && !layout_ok<Blocks>(crd)) atomicOr(params->err, 1);
      int const lane = threadIdx.x & 31;
      bool const odd = lane & 1, high = lane & 2;
      int const m_row = get<0>(crd(0)) + (odd ? 8 : 0);  // the owned row
      CUTLASS_PRAGMA_UNROLL
      for (int b = 0; b < Blocks; ++b) {
        // the other column pair of each group of the owned row (even lane: row r, odd lane: row r + 8)
        uint32_t got[4];
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < 4; ++j) {
          uint32_t give = odd ? words(8 * b + 2 * j) : words(8 * b + 2 * j + 1);
          got[j] = __shfl_xor_sync(0xffffffffu, give, 1);
        }
        uint32_t kept[4];
        uint32_t part_a = 0, part_b = 0;  // metadata: word (g & 3) = h (a) and h + 2 (b)
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < 4; ++j) {
          uint32_t mine = odd ? words(8 * b + 2 * j + 1) : words(8 * b + 2 * j);
          uint32_t nib;
          kept[j] = select24(odd ? got[j] : mine, odd ? mine : got[j], nib);
          uint32_t shift = (odd ? 4u : 0u) + (j >= 2 ? 8u : 0u);
          if (j & 1) part_b |= nib << shift; else part_a |= nib << shift;
        }
        uint32_t other = __shfl_xor_sync(0xffffffffu, odd ? part_a : part_b, 1);
        uint32_t word = (odd ? part_b : part_a) | other;
        int const n_tile = (get<1>(crd(0)) & ~31) + 32 * b;
        // lanes t%4 in {0,2} (and {1,3}) hold groups h, h+2, h+4, h+6 of one row; swap so that the
        // h = 0 lane has groups 0..3 and the h = 1 lane groups 4..7 (16 contiguous bytes each;
        // four 4-byte stores instead measured 35% slower: 0.409 vs 0.303 ms at 16384 x 8192 x 512)
        uint32_t s0 = __shfl_xor_sync(0xffffffffu, high ? kept[0] : kept[2], 2);
        uint32_t s1 = __shfl_xor_sync(0xffffffffu, high ? kept[1] : kept[3], 2);
        if (m_row < M && n_tile < N) {
          uint32_t* row = params->values + size_t(m_row) * (N / 4) + (n_tile / 4);
          uint4 out = high ? make_uint4(s0, kept[2], s1, kept[3]) : make_uint4(kept[0], s0, kept[1], s1);
          *reinterpret_cast<uint4*>(row + (high ? 4 : 0)) = out;
          params->meta[meta_word(m_row & ~8, n_tile, ((lane >> 1) & 1) + (odd ? 2 : 0), N)] = uint16_t(word);
        }
      }
    }
  };

  template <bool ReferenceSrc, class... Args>
  CUTLASS_DEVICE auto get_consumer_store_callbacks(cutlass::epilogue::fusion::ConsumerStoreArgs<Args...> const& args) {
    return make_callbacks<ConsumerStoreCallbacks, ReferenceSrc>(args);
  }
};

using UpEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, sm90::Tile, sm90::Cluster,
    Shape<_64, _64>, float, float,
    void, cutlass::layout::RowMajor, 8, void, cutlass::layout::RowMajor, 8, cutlass::epilogue::TmaWarpSpecialized,
    cutlass::epilogue::fusion::Sm90EVT<Relu2Sparse24Store, cutlass::epilogue::fusion::Sm90AccFetch>>::CollectiveOp;
using UpGemm = sm90::PingpongGemm<cutlass::layout::ColumnMajor, UpEpilogue>;

int up_relu2_sparse24(const void* h, const void* u, void* packed, int M, int N, int K, int* err, int check,
                      int sm_count, cudaStream_t stream) {
  auto [sa, sb, sc, sd] = sm90::packed_strides<UpGemm>(M, N, K);
  Relu2Sparse24Store::Arguments store{
      reinterpret_cast<uint32_t*>(packed), reinterpret_cast<uint16_t*>(packed) + size_t(M) * N / 2, err, check};
  typename UpGemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm, {M, N, K, 1},
                                  {static_cast<const BF16*>(h), sa, static_cast<const BF16*>(u), sb},
                                  {{{}, store}, nullptr, sc, nullptr, sd}, cutlass::KernelHardwareInfo{0, sm_count}};
  return sm90::launch<UpGemm>(args, stream);
}

}  // namespace elas

extern "C" {

// the version of the entry points' arguments (bumped on any change; cutlass_ext.ABI)
int elas_cutlass_abi() { return 3; }

// packed must hold M*N*9/16 bf16 elements; err one int on the device (only written when check).
// Returns 0, or 1 (shape not supported), 2 (initialize failed), 3 (launch failed).
int elas_up_relu2_sparse24(const void* h, const void* u, void* packed, int M, int N, int K,
                           int* err, int check, int sm_count, void* stream) {
  return elas::up_relu2_sparse24(h, u, packed, M, N, K, err, check, sm_count, static_cast<cudaStream_t>(stream));
}

}  // extern "C"
