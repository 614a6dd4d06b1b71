// The GEMM both CUTLASS kernels are built on, and how they launch it: a TMA warp-specialized
// ping-pong kernel with 128 x 128 x 64 tiles and a 2 x 1 cluster (the fastest at the up
// projection's shape in benchmarks/cutlass_probe.cu, on par with cuBLAS), A row-major bf16,
// float accumulators, the epilogue given by the caller.
#pragma once
#include <cuda_runtime.h>

#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/numeric_types.h"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/util/packed_stride.hpp"

namespace elas::sm90 {

using Tile = cute::Shape<cute::_128, cute::_128, cute::_64>;
using Cluster = cute::Shape<cute::_2, cute::_1, cute::_1>;

// B: K-major (cutlass::layout::ColumnMajor, an N x K row-major matrix) or N-major (RowMajor)
template <class LayoutB, class Epilogue>
using PingpongGemm = cutlass::gemm::device::GemmUniversalAdapter<cutlass::gemm::kernel::GemmUniversal<
    cute::Shape<int, int, int, int>,
    typename cutlass::gemm::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
        cutlass::bfloat16_t, cutlass::layout::RowMajor, 8, cutlass::bfloat16_t, LayoutB, 8, float, Tile, Cluster,
        cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
        cutlass::gemm::KernelTmaWarpSpecializedPingpong>::CollectiveOp,
    Epilogue>>;

// packed strides of A (M x K), B (N x K in CUTLASS's terms), C and D (M x N)
template <class Gemm>
auto packed_strides(int M, int N, int K) {
  using K_ = typename Gemm::GemmKernel;
  return cute::make_tuple(cutlass::make_cute_packed_stride(typename K_::StrideA{}, cute::make_shape(M, K, 1)),
                          cutlass::make_cute_packed_stride(typename K_::StrideB{}, cute::make_shape(N, K, 1)),
                          cutlass::make_cute_packed_stride(typename K_::StrideC{}, cute::make_shape(M, N, 1)),
                          cutlass::make_cute_packed_stride(typename K_::StrideD{}, cute::make_shape(M, N, 1)));
}

// Returns 0, or 1 (shape not supported), 2 (initialize failed), 3 (launch failed): the codes of the
// library's entry points.
template <class Gemm>
int launch(typename Gemm::Arguments const& args, cudaStream_t stream) {
  auto [M, N, K, L] = args.problem_shape;
  if (M % 64 || N % 64 || K % 8 || Gemm::can_implement(args) != cutlass::Status::kSuccess) return 1;
  if (Gemm::get_workspace_size(args) != 0) return 1;
  Gemm gemm;
  if (gemm.initialize(args, nullptr, stream) != cutlass::Status::kSuccess) return 2;
  if (gemm.run(stream) != cutlass::Status::kSuccess) return 3;
  return cudaPeekAtLastError() == cudaSuccess ? 0 : 3;
}

}  // namespace elas::sm90
