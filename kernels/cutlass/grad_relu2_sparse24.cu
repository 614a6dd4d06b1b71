// elas::cutlass_grad_relu2_sparse24 on Hopper (masked mode): from one CUTLASS 3 GEMM dS = g @ W,
//   dy = dS * 2 sqrt(S) at the positions S keeps, 0 elsewhere   (D, bf16, M x N)
//   S  = the dense 2:4 matrix of `packed`                        (aux output, bf16, M x N)
// g: M x K row-major, W: K x N row-major (the down projection's V factor), packed: the
// cuSPARSELt-layout S of the forward (kernels/cslt_layout.py). dS never reaches memory; dy and S
// leave through the epilogue's TMA stores. The node ExpandS reads the thread's 16 bytes of kept
// values and its metadata word per 64 x 32 subtile (what up_relu2_sparse24.cu wrote there), all
// subtiles of the tile at the epilogue's start, and expands them into the accumulator layout with
// 7 shuffles (layout: sparse24_epilogue.cuh). Loading per subtile instead measured 2x slower than
// cuBLAS + the separate Triton pass (1.26 vs 0.60 ms at 16384 x 8192 x 512): one exposed memory
// latency per subtile.
#include <cstdint>

#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"

#include "gemm_sm90.cuh"
#include "sparse24_epilogue.cuh"

using namespace cute;
using BF16 = cutlass::bfloat16_t;

namespace elas {

struct ExpandS : Sparse24Node<uint32_t const, uint16_t const> {
  using Sparse24Node::Sparse24Node;

  template <class RTensor, class CTensor>
  struct ConsumerStoreCallbacks : Callbacks<RTensor, CTensor> {  // tC_rS: the dense S of this subtile
    using Callbacks<RTensor, CTensor>::Callbacks;
    using Callbacks<RTensor, CTensor>::tC_rS;
    using Callbacks<RTensor, CTensor>::tC_cS;
    using Callbacks<RTensor, CTensor>::M;
    using Callbacks<RTensor, CTensor>::N;
    using Callbacks<RTensor, CTensor>::params;

    // the thread's compressed S of every subtile of the tile, loaded at once in begin(): one memory
    // latency per tile instead of one per subtile
    static constexpr int EpiM = decltype(size<3>(CTensor{}))::value, EpiN = decltype(size<4>(CTensor{}))::value;
    uint4 in_[EpiM * EpiN];
    uint32_t word_[EpiM * EpiN];

    CUTLASS_DEVICE void begin() {
      int const lane = threadIdx.x & 31;
      bool const odd = lane & 1, high = lane & 2;
      CUTLASS_PRAGMA_UNROLL
      for (int en = 0; en < EpiN; ++en) {
        CUTLASS_PRAGMA_UNROLL
        for (int em = 0; em < EpiM; ++em) {
          Tensor crd = coalesce(tC_cS(_, _, _, em, en));
          int const m_row = get<0>(crd(0)) + (odd ? 8 : 0);  // the owned row
          int const n_tile = get<1>(crd(0)) & ~31;
          uint4 in = make_uint4(0, 0, 0, 0);
          uint32_t word = 0;
          if (m_row < M && n_tile < N) {
            in = *reinterpret_cast<uint4 const*>(params->values + size_t(m_row) * (N / 4) + n_tile / 4 + (high ? 4 : 0));
            word = params->meta[meta_word(m_row & ~8, n_tile, ((lane >> 1) & 1) + (odd ? 2 : 0), N)];
          }
          in_[en * EpiM + em] = in;
          word_[en * EpiM + em] = word;
        }
      }
    }

    CUTLASS_DEVICE void begin_loop(int epi_m, int epi_n) {
      Tensor crd = coalesce(tC_cS(_, _, _, epi_m, epi_n));
      Tensor words = recast<uint32_t>(coalesce(tC_rS));
      if (params->check && !layout_ok(crd)) atomicOr(params->err, 1);
      int const lane = threadIdx.x & 31;
      bool const odd = lane & 1, high = lane & 2;
      // subtiles come in the order begin() loaded them (epi_n outer, epi_m inner): take the first
      // and shift the rest down (static register indices; indexing by (epi_m, epi_n) put the
      // arrays in local memory and serialized the loads: 1.07 vs 0.52 ms without loads)
      uint4 const in = in_[0];
      uint32_t const word = word_[0];
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i + 1 < EpiM * EpiN; ++i) {
        in_[i] = in_[i + 1];
        word_[i] = word_[i + 1];
      }
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
        words(2 * j) = odd ? got : lo;      // row r: even lane's pair is the group's first
        words(2 * j + 1) = odd ? hi : got;  // row r + 8
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
    return make_callbacks<ConsumerStoreCallbacks, ReferenceSrc>(args);
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
  using EpiDesc = cutlass::epilogue::collective::detail::EpilogueDescriptor<sm90::Tile, Shape<_64, _32>, void, BF16, Schedule>;
  using SDesc = cutlass::epilogue::collective::detail::AuxStoreDescriptor<EpiDesc, cutlass::layout::RowMajor, BF16>;
  using StoreS = cutlass::epilogue::fusion::Sm90AuxStore<
      SDesc::Stages, typename EpiDesc::EpilogueTile, BF16, cutlass::FloatRoundStyle::round_to_nearest,
      typename SDesc::Stride, typename SDesc::SmemLayoutAtom, typename SDesc::CopyOpR2S, 8>;
  using SNode = cutlass::epilogue::fusion::Sm90EVT<StoreS, ExpandS>;
  using Tree = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<GradRelu2, BF16, float, cutlass::FloatRoundStyle::round_to_nearest>,
      cutlass::epilogue::fusion::Sm90AccFetch, SNode>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, sm90::Tile, sm90::Cluster, Shape<_64, _32>, float, float,
      void, cutlass::layout::RowMajor, 8, BF16, cutlass::layout::RowMajor, 8, Schedule, Tree>::CollectiveOp;
  using Gemm = sm90::PingpongGemm<cutlass::layout::RowMajor, Epilogue>;  // W: K x N row-major
};

int grad_relu2_sparse24(const void* g, const void* w, const void* packed, void* dy, void* s,
                        int M, int N, int K, int* err, int check, int sm_count, cudaStream_t stream) {
  using Gemm = GradGemm::Gemm;
  auto [sa, sb, sc, sd] = sm90::packed_strides<Gemm>(M, N, K);
  auto ss = cutlass::make_cute_packed_stride(typename GradGemm::SDesc::Stride{}, make_shape(M, N, 1));
  ExpandS::Arguments expand{static_cast<uint32_t const*>(packed),
                            static_cast<uint16_t const*>(packed) + size_t(M) * N / 2, err, check};
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
