// elas::cutlass_grad_relu2_sparse24 on Hopper (masked mode): from one CUTLASS 3 GEMM dS = g @ W,
//   dy = dS * 2 sqrt(S) at the positions S keeps, 0 elsewhere   (D, bf16, M x N)
//   S  = the dense 2:4 matrix of `packed`                        (aux output, bf16, M x N)
// g: M x K row-major, W: K x N row-major (the down projection's V factor), packed: the
// cuSPARSELt-layout S of the forward (kernels/cslt_layout.py). dS never reaches memory; dy and S
// leave through the epilogue's TMA stores. The node ExpandS has the epilogue's producer warp copy
// each 64 x 64 subtile's compressed S (a TMA box of 64 rows x 64 bytes of kept values, two
// 256-byte metadata tiles by one bulk copy) into shared memory, ahead of the consumer warps,
// through the epilogue's load pipeline (as CUTLASS's own aux-load node does); each consumer thread
// then reads, per 32-column block, its 16 bytes of values and its metadata word from shared memory
// and expands them into the accumulator layout with 7 shuffles (layout: sparse24_epilogue.cuh).
// Loading from global memory in the consumer warps left the load latency exposed once per tile
// (Nsight Compute, session 41: a quarter of the epilogue's stall samples).
#include <cstdint>

#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"

#include "gemm_sm90.cuh"
#include "sparse24_epilogue.cuh"

using namespace cute;
using BF16 = cutlass::bfloat16_t;

namespace elas {

template <int Stages, int Blocks>  // the epilogue load pipeline's stages (StagesC); subtile: 64 x 32 Blocks
struct ExpandS : Sparse24Node<uint32_t const, uint16_t const> {
  static constexpr int kCols = 32 * Blocks, kValueBytes = 64 * kCols, kMetaBytes = 256 * Blocks;
  struct SharedStorage {
    alignas(128) uint8_t values[Stages][kValueBytes];
    alignas(128) uint8_t meta[Stages][kMetaBytes];
  };
  // the kept values as an M x N byte matrix (a subtile's 64 rows x kCols bytes are one TMA box)
  struct Params : Arguments {
    alignas(64) CUtensorMap values_map;
  };

  static CUresult encode_values_map(CUtensorMap* map, uint32_t const* values, int M, int N) {
    cuuint64_t dims[2] = {cuuint64_t(N), cuuint64_t(M)}, strides[1] = {cuuint64_t(N)};
    cuuint32_t box[2] = {kCols, 64}, unit[2] = {1, 1};
    return cutlass::call_cuTensorMapEncodeTiled(
        map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<uint32_t*>(values), dims, strides, box, unit,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  }
  template <class ProblemShape>
  static Params to_underlying_arguments(ProblemShape const& shape, Arguments const& args, void*) {
    auto [M, N, K, L] = cute::append<4>(shape, 1);
    Params params{};
    static_cast<Arguments&>(params) = args;
    encode_values_map(&params.values_map, args.values, int(M), int(N));  // checked before the launch
    return params;
  }

  uint8_t* smem_values = nullptr;
  uint8_t* smem_meta = nullptr;
  Params const* full_params = nullptr;

  CUTLASS_HOST_DEVICE ExpandS() {}
  CUTLASS_HOST_DEVICE ExpandS(Params const& params, SharedStorage const& shared)
      : Sparse24Node(params, {}), smem_values(const_cast<uint8_t*>(&shared.values[0][0])),
        smem_meta(const_cast<uint8_t*>(&shared.meta[0][0])), full_params(&params) {}

  CUTLASS_DEVICE bool is_producer_load_needed() const { return true; }

  // the producer warp: one TMA box of kept values and one bulk copy of the subtile's metadata tiles
  // (adjacent: tiles of one 64-row band follow each other) per subtile; 64 bulk copies of 32-byte
  // rows per 64 x 32 subtile instead measured 2.7x slower (1.02 vs 0.38 ms)
  struct ProducerLoadCallbacks : cutlass::epilogue::fusion::EmptyProducerLoadCallbacks {
    Params const* params;
    uint8_t* smem_values;
    uint8_t* smem_meta;
    int M, N, m0, n0;

    CUTLASS_DEVICE ProducerLoadCallbacks(Params const* p, uint8_t* sv, uint8_t* sm, int M_, int N_, int m0_, int n0_)
        : params(p), smem_values(sv), smem_meta(sm), M(M_), N(N_), m0(m0_), n0(n0_) {}

    CUTLASS_DEVICE void step(uint64_t* full_mbarrier_ptr, int epi_m, int epi_n, int load_iteration, bool issue_tma_load) {
      int const row0 = m0 + 64 * epi_m, col0 = n0 + kCols * epi_n;
      if (!issue_tma_load || row0 >= M || col0 >= N) return;  // outside: M, N are multiples of 64
      int const stage = load_iteration % Stages;
      cutlass::arch::ClusterTransactionBarrier::expect_transaction(full_mbarrier_ptr, kValueBytes + kMetaBytes);
      cute::SM90_TMA_LOAD_2D::copy(&params->values_map, full_mbarrier_ptr, 0, smem_values + stage * kValueBytes,
                                   col0, row0);
      cute::SM90_BULK_COPY_G2S::copy(params->meta + meta_word(row0, col0, 0, N), full_mbarrier_ptr,
                                     smem_meta + stage * kMetaBytes, kMetaBytes);
    }
  };

  template <class... Args>
  CUTLASS_DEVICE auto get_producer_load_callbacks(cutlass::epilogue::fusion::ProducerLoadArgs<Args...> const& args) {
    auto [M, N, K, L] = args.problem_shape_mnkl;
    auto [m, n, k, l] = args.tile_coord_mnkl;
    return ProducerLoadCallbacks(full_params, smem_values, smem_meta, int(M), int(N),
                                 int(m) * int(size<0>(args.tile_shape_mnk)), int(n) * int(size<1>(args.tile_shape_mnk)));
  }

  template <class RTensor, class CTensor>
  struct ConsumerStoreCallbacks : Callbacks<RTensor, CTensor> {  // tC_rS: the dense S of this subtile
    using Callbacks<RTensor, CTensor>::Callbacks;
    using Callbacks<RTensor, CTensor>::tC_rS;
    using Callbacks<RTensor, CTensor>::tC_cS;
    using Callbacks<RTensor, CTensor>::params;
    uint8_t const* smem_values = nullptr;
    uint8_t const* smem_meta = nullptr;

    CUTLASS_DEVICE void begin_loop(int epi_m, int epi_n) {
      if (params->check && !layout_ok<Blocks>(coalesce(tC_cS(_, _, _, epi_m, epi_n)))) atomicOr(params->err, 1);
    }

    // the subtile is in shared memory now (the collective waited on its load stage)
    CUTLASS_DEVICE void previsit(int epi_m, int epi_n, int load_iteration, bool) {
      Tensor crd = coalesce(tC_cS(_, _, _, epi_m, epi_n));
      Tensor words = recast<uint32_t>(coalesce(tC_rS));
      int const lane = threadIdx.x & 31, stage = load_iteration % Stages;
      bool const odd = lane & 1, high = lane & 2;
      int const row = (get<0>(crd(0)) & 63) + (odd ? 8 : 0);  // the owned row, within the subtile
      int const g = ((lane >> 1) & 1) + (odd ? 2 : 0);
      CUTLASS_PRAGMA_UNROLL
      for (int b = 0; b < Blocks; ++b) {  // 32-column block b: slots 8b .. 8b + 7
        uint4 const in = *reinterpret_cast<uint4 const*>(smem_values + stage * kValueBytes + kCols * row + 32 * b +
                                                         (high ? 16 : 0));
        // the subtile's metadata tiles, in shared memory as the layout of a 64 x kCols matrix
        uint32_t const word = reinterpret_cast<uint16_t const*>(smem_meta + stage * kMetaBytes)[
            meta_word(row & ~8, 32 * b, g, kCols)];
        // kept pairs of the owned row's groups 2j + h (the inverse of the forward's store exchange)
        uint32_t s0 = __shfl_xor_sync(0xffffffffu, high ? in.x : in.y, 2);
        uint32_t s1 = __shfl_xor_sync(0xffffffffu, high ? in.z : in.w, 2);
        uint32_t kept[4] = {high ? s0 : in.x, high ? s1 : in.z, high ? in.y : s0, high ? in.w : s1};
        uint32_t other = __shfl_xor_sync(0xffffffffu, word, 1);
        uint32_t word_a = odd ? other : word, word_b = odd ? word : other;
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < 4; ++j) {
          uint32_t nib = ((j & 1) ? word_b : word_a) >> ((odd ? 4 : 0) + (j >= 2 ? 8 : 0)) & 0xfu;
          uint64_t group = expand24(kept[j], nib);
          uint32_t lo = uint32_t(group), hi = uint32_t(group >> 32);
          uint32_t got = __shfl_xor_sync(0xffffffffu, odd ? lo : hi, 1);
          words(8 * b + 2 * j) = odd ? got : lo;      // row r: even lane's pair is the group's first
          words(8 * b + 2 * j + 1) = odd ? hi : got;  // row r + 8
        }
      }
    }

    template <typename ElementAccumulator, int FragmentSize>
    CUTLASS_DEVICE auto visit(cutlass::Array<ElementAccumulator, FragmentSize> const&, int epi_v, int, int) {
      Tensor frg = recast<cutlass::Array<BF16, FragmentSize>>(coalesce(tC_rS));
      return frg(epi_v);
    }
  };

  template <bool ReferenceSrc, class... Args>
  CUTLASS_DEVICE auto get_consumer_store_callbacks(cutlass::epilogue::fusion::ConsumerStoreArgs<Args...> const& args) {
    auto cb = make_callbacks<ConsumerStoreCallbacks, ReferenceSrc>(args);
    cb.smem_values = smem_values;
    cb.smem_meta = smem_meta;
    return cb;
  }
};

// sqrt.approx (one MUFU op, sqrt(0) = 0), as Triton's tl.sqrt in the default path. cutlass::fast_sqrt
// is the IEEE sqrtf: its special-case branch and subroutine call ran for every element (Nsight
// Compute, session 40: a third of the epilogue's issue slots).
__device__ __forceinline__ float approx_sqrt(float x) {
  float y;
  asm("sqrt.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// dy = dS * 2 sqrt(S) (S = 0 at pruned positions gives 0 there)
template <class T>
struct GradRelu2 {
  CUTLASS_DEVICE T operator()(T const& ds, T const& s) const { return ds * T(2) * approx_sqrt(s); }
};
template <class T, int N>
struct GradRelu2<cutlass::Array<T, N>> {
  CUTLASS_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& ds, cutlass::Array<T, N> const& s) const {
    cutlass::Array<T, N> out;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) out[i] = GradRelu2<T>{}(ds[i], s[i]);
    return out;
  }
};

// (Session 35 measured diagnostic builds of this kernel: without the S store, without the loads,
// with W read K-major; docs/kernels.md.)
struct GradGemm {
  using Schedule = cutlass::epilogue::TmaWarpSpecialized;
  using EpiTile = Shape<_64, _64>;  // two 32-column blocks per subtile (docs/kernels.md, sixth session)
  using EpiDesc = cutlass::epilogue::collective::detail::EpilogueDescriptor<sm90::Tile, EpiTile, void, BF16, Schedule>;
  using Expand = ExpandS<EpiDesc::StagesC, decltype(size<1>(EpiTile{}))::value / 32>;
  using SDesc = cutlass::epilogue::collective::detail::AuxStoreDescriptor<EpiDesc, cutlass::layout::RowMajor, BF16>;
  using StoreS = cutlass::epilogue::fusion::Sm90AuxStore<
      SDesc::Stages, typename EpiDesc::EpilogueTile, BF16, cutlass::FloatRoundStyle::round_to_nearest,
      typename SDesc::Stride, typename SDesc::SmemLayoutAtom, typename SDesc::CopyOpR2S, 8>;
  using SNode = cutlass::epilogue::fusion::Sm90EVT<StoreS, Expand>;
  using Tree = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<GradRelu2, BF16, float, cutlass::FloatRoundStyle::round_to_nearest>,
      cutlass::epilogue::fusion::Sm90AccFetch, SNode>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, sm90::Tile, sm90::Cluster, EpiTile, float, float,
      void, cutlass::layout::RowMajor, 8, BF16, cutlass::layout::RowMajor, 8, Schedule, Tree>::CollectiveOp;
  using Gemm = sm90::PingpongGemm<cutlass::layout::RowMajor, Epilogue>;  // W: K x N row-major
};

int grad_relu2_sparse24(const void* g, const void* w, const void* packed, void* dy, void* s,
                        int M, int N, int K, int* err, int check, int sm_count, cudaStream_t stream) {
  using Gemm = GradGemm::Gemm;
  auto [sa, sb, sc, sd] = sm90::packed_strides<Gemm>(M, N, K);
  auto ss = cutlass::make_cute_packed_stride(typename GradGemm::SDesc::Stride{}, make_shape(M, N, 1));
  using Expand = GradGemm::Expand;
  typename Expand::Arguments expand{static_cast<uint32_t const*>(packed),
                                    static_cast<uint16_t const*>(packed) + size_t(M) * N / 2, err, check};
  CUtensorMap probe;
  if (Expand::encode_values_map(&probe, expand.values, M, N) != CUDA_SUCCESS) return 2;
  typename GradGemm::StoreS::Arguments store{static_cast<BF16*>(s), ss};
  typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm, {M, N, K, 1},
                                {static_cast<const BF16*>(g), sa, static_cast<const BF16*>(w), sb},
                                {{{}, {expand, store}, {}}, nullptr, sc, static_cast<BF16*>(dy), sd},
                                cutlass::KernelHardwareInfo{0, sm_count}};
  return sm90::launch<Gemm>(args, stream);
}

}  // namespace elas

extern "C" {

// dy and s: M x N bf16 each; packed: the M x N compressed S; err: one int on the device.
// Returns 0, or 1 (shape not supported), 2 (initialize failed), 3 (launch failed).
int elas_grad_relu2_sparse24(const void* g, const void* w, const void* packed, void* dy, void* s,
                             int M, int N, int K, int* err, int check, int sm_count, void* stream) {
  return elas::grad_relu2_sparse24(g, w, packed, dy, s, M, N, K, err, check, sm_count,
                                   static_cast<cudaStream_t>(stream));
}

}  // extern "C"
