// Probe: does a CUTLASS 3 Hopper GEMM (TMA, warp-specialized) reach cuBLAS at the ELAS FFN's up
// projection's shape, and what does an activation in its epilogue cost? y = h @ U^T, h: M x K row-major, U: N x K row-major, y: M x N row-major, bf16.
//
// Build (CUTLASS headers in .cutlass/, fetched from github:NVIDIA/cutlass, not part of the product):
//   nvcc -std=c++20 -O3 -DNDEBUG --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a \
//        -I.cutlass/include -I.cutlass/tools/util/include tools/cutlass_probe.cu -o cutlass_probe
//   ./cutlass_probe [M N K]   (default 16384 8192 512; prints ms and TFLOP/s per variant)
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cmath>

#include <cuda_runtime.h>

#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/numeric_types.h"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"
#include "cutlass/util/packed_stride.hpp"

using namespace cute;
using BF16 = cutlass::bfloat16_t;
constexpr int kAlign = 8;  // 16 bytes of bf16

// relu(x)^2 on scalars and on the epilogue's fragments
template <class T>
struct Relu2 {
  CUTLASS_HOST_DEVICE T operator()(T const& x) const { T r = x > T(0) ? x : T(0); return r * r; }
};
template <class T, int N>
struct Relu2<cutlass::Array<T, N>> {
  CUTLASS_HOST_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& x) const {
    cutlass::Array<T, N> y;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) { T r = x[i] > T(0) ? x[i] : T(0); y[i] = r * r; }
    return y;
  }
};

// The 2:4 rule, on the device and in the host check: element q of group g (4 values) is pruned
// when at least 2 others beat it (larger, or equal at a lower index).
template <class T>
CUTLASS_HOST_DEVICE bool pruned24(T const* g, int q) {
  int beaten = 0;
  CUTLASS_PRAGMA_UNROLL
  for (int j = 0; j < 4; ++j) beaten += (g[j] > g[q]) || (g[j] == g[q] && j < q);
  return beaten >= 2;
}

// relu(x)^2, then the 2 largest of every 4 consecutive fragment elements kept (ties: the lower index).
// Correct only if each fragment holds whole groups of 4 consecutive columns: the host check says
// whether the epilogue's register layout does (measured: it does not).
template <class T>
struct Relu2Top24 : Relu2<T> {};
template <class T, int N>
struct Relu2Top24<cutlass::Array<T, N>> {
  CUTLASS_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& x) const {
    cutlass::Array<T, N> y = Relu2<cutlass::Array<T, N>>{}(x);
    if constexpr (N % 4 == 0) {
      CUTLASS_PRAGMA_UNROLL
      for (int g = 0; g < N; g += 4) {
        T grp[4] = {y[g], y[g + 1], y[g + 2], y[g + 3]};
        CUTLASS_PRAGMA_UNROLL
        for (int i = 0; i < 4; ++i) {
          if (pruned24(grp, i)) y[g + i] = T(0);
        }
      }
    }
    return y;
  }
};

// The same selection assuming the wgmma accumulator layout: a thread holds pairs of adjacent
// columns and lane ^ 1 holds the other pair of each group of 4 (even lane: the first pair).
template <class T>
struct Relu2Top24Shfl : Relu2<T> {};
template <class T, int N>
struct Relu2Top24Shfl<cutlass::Array<T, N>> {
  CUTLASS_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& x) const {
    cutlass::Array<T, N> y = Relu2<cutlass::Array<T, N>>{}(x);
    if constexpr (N % 2 == 0) {
      int const base = (threadIdx.x & 1) ? 2 : 0;
      CUTLASS_PRAGMA_UNROLL
      for (int p = 0; p < N; p += 2) {
        T mine[2] = {y[p], y[p + 1]};
        T theirs[2] = {__shfl_xor_sync(0xffffffffu, mine[0], 1), __shfl_xor_sync(0xffffffffu, mine[1], 1)};
        T g[4] = {base ? theirs[0] : mine[0], base ? theirs[1] : mine[1],
                  base ? mine[0] : theirs[0], base ? mine[1] : theirs[1]};
        CUTLASS_PRAGMA_UNROLL
        for (int i = 0; i < 2; ++i) {
          if (pruned24(g, base + i)) y[p + i] = T(0);
        }
      }
    }
    return y;
  }
};

template <class Tile, class Cluster, class MainSchedule, class EpiSchedule, class Fusion>
struct Variant {
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      BF16, cutlass::layout::RowMajor, kAlign, BF16, cutlass::layout::RowMajor, kAlign,
      EpiSchedule, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      BF16, cutlass::layout::RowMajor, kAlign, BF16, cutlass::layout::ColumnMajor, kAlign, float,
      Tile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      MainSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
};

#define CHECK_CUDA(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); std::exit(1); } } while (0)

// Runs one variant: returns ms per GEMM (median of 5 timings of 20 calls), fills d.
template <class V>
float run(const char* name, int m, int n, int k, BF16* a, BF16* b, BF16* d, double flop) {
  using Gemm = typename V::Gemm;
  using K = typename Gemm::GemmKernel;
  auto sa = cutlass::make_cute_packed_stride(typename K::StrideA{}, make_shape(m, k, 1));
  auto sb = cutlass::make_cute_packed_stride(typename K::StrideB{}, make_shape(n, k, 1));
  auto sc = cutlass::make_cute_packed_stride(typename K::StrideC{}, make_shape(m, n, 1));
  auto sd = cutlass::make_cute_packed_stride(typename K::StrideD{}, make_shape(m, n, 1));
  typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm, {m, n, k, 1},
                                {a, sa, b, sb}, {{}, d, sc, d, sd}};
  if constexpr (requires { args.epilogue.thread.alpha; }) {  // stock fusions; a bare visitor tree has no scalars
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
  }
  Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) { std::printf("%-34s cannot implement\n", name); return -1; }
  size_t ws_bytes = Gemm::get_workspace_size(args);
  void* ws = nullptr;
  if (ws_bytes) CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
  if (gemm.initialize(args, ws) != cutlass::Status::kSuccess) { std::printf("%-34s initialize failed\n", name); return -1; }
  for (int i = 0; i < 3; ++i) gemm.run();
  CHECK_CUDA(cudaDeviceSynchronize());
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0); cudaEventCreate(&e1);
  std::vector<float> t;
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(e0);
    for (int i = 0; i < 20; ++i) gemm.run();
    cudaEventRecord(e1);
    CHECK_CUDA(cudaEventSynchronize(e1));
    float ms; cudaEventElapsedTime(&ms, e0, e1); t.push_back(ms / 20);
  }
  std::sort(t.begin(), t.end());
  if (ws) cudaFree(ws);
  std::printf("%-34s %8.4f ms %6.0f TFLOP/s\n", name, t[2], flop / t[2] / 1e9);
  return t[2];
}

using Coop = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using CoopEpi = cutlass::epilogue::TmaWarpSpecializedCooperative;
using Ping = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using PingEpi = cutlass::epilogue::TmaWarpSpecialized;
using Plain = cutlass::epilogue::fusion::LinearCombination<BF16, float>;
using Act = cutlass::epilogue::fusion::LinCombEltAct<Relu2, BF16, float>;
// a bare visitor tree: D = relu2(acc), no alpha / beta / source
using Relu2Tree = cutlass::epilogue::fusion::Sm90EVT<
    cutlass::epilogue::fusion::Sm90Compute<Relu2, BF16, float, cutlass::FloatRoundStyle::round_to_nearest>,
    cutlass::epilogue::fusion::Sm90AccFetch>;
using Top24ShflTree = cutlass::epilogue::fusion::Sm90EVT<
    cutlass::epilogue::fusion::Sm90Compute<Relu2Top24Shfl, BF16, float, cutlass::FloatRoundStyle::round_to_nearest>,
    cutlass::epilogue::fusion::Sm90AccFetch>;
using Top24Tree = cutlass::epilogue::fusion::Sm90EVT<
    cutlass::epilogue::fusion::Sm90Compute<Relu2Top24, BF16, float, cutlass::FloatRoundStyle::round_to_nearest>,
    cutlass::epilogue::fusion::Sm90AccFetch>;

int main(int argc, char** argv) {
  int m = argc > 3 ? std::atoi(argv[1]) : 16384, n = argc > 3 ? std::atoi(argv[2]) : 8192,
      k = argc > 3 ? std::atoi(argv[3]) : 512;
  double flop = 2.0 * m * n * k;
  std::vector<BF16> ha(size_t(m) * k), hb(size_t(n) * k);
  srand(0);
  for (auto& x : ha) x = BF16(float(rand()) / RAND_MAX - 0.5f);
  for (auto& x : hb) x = BF16((float(rand()) / RAND_MAX - 0.5f) * 0.1f);
  BF16 *a, *b, *d0, *d1;
  CHECK_CUDA(cudaMalloc(&a, ha.size() * 2)); CHECK_CUDA(cudaMalloc(&b, hb.size() * 2));
  CHECK_CUDA(cudaMalloc(&d0, size_t(m) * n * 2)); CHECK_CUDA(cudaMalloc(&d1, size_t(m) * n * 2));
  CHECK_CUDA(cudaMemcpy(a, ha.data(), ha.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(b, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice));
  std::printf("M=%d N=%d K=%d bf16, y = h @ U^T\n", m, n, k);
  run<Variant<Shape<_256, _128, _64>, Shape<_2, _1, _1>, Coop, CoopEpi, Plain>>("coop 256x128x64 c2x1", m, n, k, a, b, d0, flop);
  run<Variant<Shape<_128, _256, _64>, Shape<_1, _2, _1>, Coop, CoopEpi, Plain>>("coop 128x256x64 c1x2", m, n, k, a, b, d0, flop);
  run<Variant<Shape<_128, _128, _64>, Shape<_2, _1, _1>, Coop, CoopEpi, Plain>>("coop 128x128x64 c2x1", m, n, k, a, b, d0, flop);
  run<Variant<Shape<_64, _256, _64>, Shape<_1, _2, _1>, Ping, PingEpi, Plain>>("pingpong 64x256x64 c1x2", m, n, k, a, b, d0, flop);
  run<Variant<Shape<_128, _128, _64>, Shape<_1, _2, _1>, Ping, PingEpi, Plain>>("pingpong 128x128x64 c1x2", m, n, k, a, b, d0, flop);
  run<Variant<Shape<_128, _128, _64>, Shape<_2, _1, _1>, Ping, PingEpi, Plain>>("pingpong 128x128x64 c2x1", m, n, k, a, b, d0, flop);
  run<Variant<Shape<_128, _128, _64>, Shape<_1, _1, _1>, Ping, PingEpi, Plain>>("pingpong 128x128x64 c1x1", m, n, k, a, b, d0, flop);
  run<Variant<Shape<_128, _128, _64>, Shape<_1, _2, _1>, Ping, PingEpi, Act>>("pingpong 128x128x64 c1x2 + relu^2", m, n, k, a, b, d1, flop);
  run<Variant<Shape<_256, _128, _64>, Shape<_2, _1, _1>, Coop, CoopEpi, Act>>("coop 256x128x64 c2x1 + relu^2", m, n, k, a, b, d1, flop);
  run<Variant<Shape<_128, _128, _64>, Shape<_2, _1, _1>, Ping, PingEpi, Act>>("pingpong 128x128x64 c2x1 + relu^2", m, n, k, a, b, d1, flop);
  run<Variant<Shape<_128, _128, _64>, Shape<_2, _1, _1>, Ping, PingEpi, Relu2Tree>>("pingpong 128x128x64 c2x1 relu^2 tree", m, n, k, a, b, d1, flop);
  // check: d1 == relu(d0)^2 (d0 from the last plain variant), and d0 against a host product on a few rows
  std::vector<BF16> h0(size_t(m) * n), h1(size_t(m) * n);
  CHECK_CUDA(cudaMemcpy(h0.data(), d0, h0.size() * 2, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(h1.data(), d1, h1.size() * 2, cudaMemcpyDeviceToHost));
  BF16* d2;
  CHECK_CUDA(cudaMalloc(&d2, size_t(m) * n * 2));
  run<Variant<Shape<_128, _128, _64>, Shape<_2, _1, _1>, Ping, PingEpi, Top24Tree>>("pingpong 128x128x64 c2x1 relu^2+top2of4", m, n, k, a, b, d2, flop);
  auto check_top24 = [&](BF16* dev, const char* what) {
    std::vector<BF16> h2(size_t(m) * n);
    CHECK_CUDA(cudaMemcpy(h2.data(), dev, h2.size() * 2, cudaMemcpyDeviceToHost));
    long groups = 0, groups_ok = 0;
    for (int i = 0; i < m; i += m / 7) {
      for (int j = 0; j < n; j += 4) {
        float v[4]; bool ok = true;
        for (int q = 0; q < 4; ++q) v[q] = float(h1[size_t(i) * n + j + q]);  // relu^2 (tree, bf16)
        for (int q = 0; q < 4; ++q) ok = ok && (float(h2[size_t(i) * n + j + q]) == (pruned24(v, q) ? 0.f : v[q]));
        groups += 1; groups_ok += ok;
      }
    }
    std::printf("%s: groups of 4 columns matching the host rule %ld / %ld\n", what, groups_ok, groups);
  };
  check_top24(d2, "top2of4 on the fragment");
  run<Variant<Shape<_128, _128, _64>, Shape<_2, _1, _1>, Ping, PingEpi, Top24ShflTree>>("pingpong 128x128x64 c2x1 relu^2+top2of4 shfl", m, n, k, a, b, d2, flop);
  check_top24(d2, "top2of4 with lane ^ 1 shuffle");
  double err_ref = 0, norm_ref = 0, err_act = 0, norm_act = 0;
  for (int i = 0; i < m; i += m / 7) {
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int kk = 0; kk < k; ++kk) acc += double(float(ha[size_t(i) * k + kk])) * double(float(hb[size_t(j) * k + kk]));
      double got = float(h0[size_t(i) * n + j]);
      err_ref += (got - acc) * (got - acc); norm_ref += acc * acc;
      double r = acc > 0 ? acc * acc : 0, g1 = float(h1[size_t(i) * n + j]);
      err_act += (g1 - r) * (g1 - r); norm_act += r * r;
    }
  }
  std::printf("rel err plain vs host %.2e, relu^2 vs host %.2e\n", std::sqrt(err_ref / norm_ref),
              std::sqrt(err_act / (norm_act + 1e-30)));
  return 0;
}
