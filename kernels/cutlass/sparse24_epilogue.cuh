// What the CUTLASS 2:4 epilogues share: the ELAS 2:4 rule on one group, its inverse, and the
// register layout they assume (checked at run time when asked).
//
// Layout assumed (wgmma accumulators, each 64-row x 32-column block of a 128-thread warpgroup's tile
// or epilogue subtile): lane t of
// warp w holds, as 8 column pairs ("slots"), rows 16w + t/4 (slot 2j) and +8 (slot 2j+1), columns
// 8j + 2(t%4) and +1, j = 0..3. Lanes t and t^1 hold the two column pairs of one group of 4; the
// even lane owns row r, the odd lane row r+8 (it ranks / expands that row's groups). Lanes t and
// t^2 of one owned row hold the groups 2j and 2j+1: after one exchange each has 16 contiguous bytes
// of compressed values (lane with t&2 == 0: groups 0..3 of the subtile, else 4..7). Even lanes hold
// the metadata word (g & 3) = h (h = (t >> 1) & 1), odd lanes h + 2 (cslt_layout.py's sm90 layout).
#pragma once
#include <cstdint>

#include "cute/tensor.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp"

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

// Whether this thread's subtile coordinates (crd: coalesced (m, n[, l]) per element, 16 elements
// per 32 columns) are the layout above; a subtile of Blocks x 32 columns continues the slots
// (slot s: columns n0 + 8 (s >> 1)).
template <int Blocks = 1, class Crd>
__device__ __forceinline__ bool layout_ok(Crd const& crd) {
  int const lane = threadIdx.x & 31;
  int const m0 = cute::get<0>(crd(0)), n0 = cute::get<1>(crd(0));
  bool ok = (m0 % 64) == 16 * ((threadIdx.x >> 5) & 3) + (lane >> 2) && (n0 % 32) == 2 * (lane & 3);
#pragma unroll
  for (int s = 0; s < 8 * Blocks; ++s) {
    ok = ok && cute::get<0>(crd(2 * s)) == m0 + 8 * (s & 1) && cute::get<1>(crd(2 * s)) == n0 + 8 * (s >> 1) &&
         cute::get<0>(crd(2 * s + 1)) == m0 + 8 * (s & 1) && cute::get<1>(crd(2 * s + 1)) == n0 + 8 * (s >> 1) + 1;
  }
  return ok;
}

// The host-side plumbing of both 2:4 epilogues (the up kernel's Relu2Sparse24Direct and the grad
// kernel's visitor node): their arguments (the compressed buffer's two regions; `Word` is uint32_t,
// or const for the node that reads them) and CUTLASS's static hooks (no workspace; M and N
// multiples of 64).
template <class Word, class MetaWord>
struct Sparse24Plumbing {
  struct SharedStorage {};
  struct Arguments {
    Word* values = nullptr;  // M x N/4 words: the kept pair of each group of 4
    MetaWord* meta = nullptr;
    int* err = nullptr;      // set when `check` finds another register layout
    int check = 0;
  };
  using Params = Arguments;

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
};

// A 2:4 visitor node (the grad kernel's): the plumbing above, a visitor node's hooks, and the
// per-thread subtile tensors its callbacks work on.
template <class Word, class MetaWord>
struct Sparse24Node : Sparse24Plumbing<Word, MetaWord> {
  using typename Sparse24Plumbing<Word, MetaWord>::SharedStorage;
  using typename Sparse24Plumbing<Word, MetaWord>::Params;

  CUTLASS_HOST_DEVICE Sparse24Node() {}
  CUTLASS_HOST_DEVICE Sparse24Node(Params const& params, SharedStorage const&) : params_ptr(&params) {}
  Params const* params_ptr = nullptr;

  CUTLASS_DEVICE bool is_producer_load_needed() const { return false; }
  CUTLASS_DEVICE bool is_C_load_needed() const { return false; }
  template <class... Args>
  CUTLASS_DEVICE auto get_producer_load_callbacks(cutlass::epilogue::fusion::ProducerLoadArgs<Args...> const&) {
    return cutlass::epilogue::fusion::EmptyProducerLoadCallbacks{};
  }

  // the callbacks' state: this subtile's bf16 values (CPY, CPY_M, CPY_N) and every element's
  // (m, n) coordinates (CPY, CPY_M, CPY_N, EPI_M, EPI_N)
  template <class RTensor, class CTensor>
  struct Callbacks : cutlass::epilogue::fusion::EmptyConsumerStoreCallbacks {
    CUTLASS_DEVICE Callbacks(RTensor&& r, CTensor&& c, int m, int n, Params const* p)
        : tC_rS(cute::forward<RTensor>(r)), tC_cS(cute::forward<CTensor>(c)), M(m), N(n), params(p) {}
    RTensor tC_rS;
    CTensor tC_cS;
    int M, N;
    Params const* params;
  };

  template <template <class, class> class CB, bool ReferenceSrc, class... Args>
  CUTLASS_DEVICE auto make_callbacks(cutlass::epilogue::fusion::ConsumerStoreArgs<Args...> const& args) const {
    auto [M, N, K, L] = args.problem_shape_mnkl;
    cute::Tensor coords = cute::make_identity_tensor(cute::make_shape(M, N, L));
    cute::Tensor tC_cS = cutlass::epilogue::fusion::sm90_partition_for_epilogue<ReferenceSrc>(
        coords, args.tile_shape_mnk, args.tile_coord_mnkl, args.epi_tile, args.tiled_copy, args.thread_idx);
    cute::Tensor tC_rS = cute::make_tensor<cutlass::bfloat16_t>(cute::take<0, 3>(cute::shape(tC_cS)));
    return CB<decltype(tC_rS), decltype(tC_cS)>(cute::move(tC_rS), cute::move(tC_cS), int(M), int(N), params_ptr);
  }
};

}  // namespace elas
