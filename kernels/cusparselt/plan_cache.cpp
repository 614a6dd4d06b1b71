// cuSPARSELt sparse GEMM with cached plans: C (m x n, row-major) = A (m x k, 2:4 sparse, compressed)
// @ B (k x n), bf16 or fp16, float32 accumulation.
//
// torch._cslt_sparse_mm builds every descriptor, the algorithm selection, the plan and its
// workspace on every call (hundreds of microseconds of host time); without CUDA graphs that host
// time is what an ELAS FFN loses to the dense one. This library builds them once per
// (device, m, k, n, dtype, B layout, algorithm) and then only launches. The descriptors are the
// ones torch uses (row-major A with ld = k, B row-major k x n or its transpose, 16-byte
// alignment), so the compressed layout is the one torch._cslt_compress and elas_compile's
// kernels write.
//
// C ABI for ctypes; every function returns 0 or a cusparseStatus_t. The caller sets the current
// device and owns the workspace (a torch tensor of elas_cslt_plan's size), so the library needs
// no CUDA runtime of its own: it links the libcusparseLt that torch already loaded.

#include <cusparseLt.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace {

constexpr int kAbi = 1;

struct Plan {
  cusparseLtMatDescriptor_t a, b, c;
  cusparseLtMatmulDescriptor_t matmul;
  cusparseLtMatmulAlgSelection_t alg;
  cusparseLtMatmulPlan_t plan;
  size_t workspace_bytes = 0;
};

using Key = std::tuple<int, int64_t, int64_t, int64_t, int, int, int>;  // device m k n dtype b_contiguous alg

std::mutex mutex;
std::map<int, std::unique_ptr<cusparseLtHandle_t>> handles;  // per device
std::map<Key, std::unique_ptr<Plan>> plans;  // node-based: descriptors never move once built

int handle_for(int device, cusparseLtHandle_t** out) {
  auto& h = handles[device];
  if (!h) {
    auto fresh = std::make_unique<cusparseLtHandle_t>();
    if (auto s = cusparseLtInit(fresh.get())) return s;
    h = std::move(fresh);
  }
  *out = h.get();
  return 0;
}

#define CHECK(call)                      \
  do {                                   \
    int status_ = static_cast<int>(call); \
    if (status_) return status_;         \
  } while (0)

int build(const cusparseLtHandle_t* handle, const Key& key, Plan* p) {
  auto [device, m, k, n, dtype, b_contiguous, alg_id] = key;
  cudaDataType type = dtype == 0 ? CUDA_R_16BF : CUDA_R_16F;
  CHECK(cusparseLtStructuredDescriptorInit(handle, &p->a, m, k, k, 16, type, CUSPARSE_ORDER_ROW,
                                           CUSPARSELT_SPARSITY_50_PERCENT));
  // B as given: row-major k x n when contiguous, else the transpose of a row-major n x k
  CHECK(cusparseLtDenseDescriptorInit(handle, &p->b, b_contiguous ? k : n, b_contiguous ? n : k,
                                      b_contiguous ? n : k, 16, type, CUSPARSE_ORDER_ROW));
  CHECK(cusparseLtDenseDescriptorInit(handle, &p->c, m, n, n, 16, type, CUSPARSE_ORDER_ROW));
  CHECK(cusparseLtMatmulDescriptorInit(
      handle, &p->matmul, CUSPARSE_OPERATION_NON_TRANSPOSE,
      b_contiguous ? CUSPARSE_OPERATION_NON_TRANSPOSE : CUSPARSE_OPERATION_TRANSPOSE, &p->a, &p->b, &p->c,
      &p->c, CUSPARSE_COMPUTE_32F));
  CHECK(cusparseLtMatmulAlgSelectionInit(handle, &p->alg, &p->matmul, CUSPARSELT_MATMUL_ALG_DEFAULT));
  CHECK(cusparseLtMatmulAlgSetAttribute(handle, &p->alg, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &alg_id, sizeof(alg_id)));
  CHECK(cusparseLtMatmulPlanInit(handle, &p->plan, &p->matmul, &p->alg));
  return cusparseLtMatmulGetWorkspace(handle, &p->plan, &p->workspace_bytes);
}

void destroy(Plan* p) {
  cusparseLtMatmulPlanDestroy(&p->plan);
  cusparseLtMatmulAlgSelectionDestroy(&p->alg);
  cusparseLtMatDescriptorDestroy(&p->a);
  cusparseLtMatDescriptorDestroy(&p->b);
  cusparseLtMatDescriptorDestroy(&p->c);
}

}  // namespace

extern "C" {

int elas_cslt_abi() { return kAbi; }

// Largest algorithm id cuSPARSELt offers for this product (ids 0..max are valid).
int elas_cslt_max_alg(int device, int64_t m, int64_t k, int64_t n, int dtype, int b_contiguous, int* max_id) {
  std::lock_guard<std::mutex> lock(mutex);
  cusparseLtHandle_t* handle;
  CHECK(handle_for(device, &handle));
  Plan p;
  int status = build(handle, Key{device, m, k, n, dtype, b_contiguous, 0}, &p);
  if (!status)
    status = cusparseLtMatmulAlgGetAttribute(handle, &p.alg, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, max_id,
                                             sizeof(*max_id));
  destroy(&p);
  return status;
}

// Builds the plan of this key once (not during CUDA graph capture) and reports its workspace size.
int elas_cslt_plan(int device, int64_t m, int64_t k, int64_t n, int dtype, int b_contiguous, int alg_id,
                   size_t* workspace_bytes) {
  std::lock_guard<std::mutex> lock(mutex);
  cusparseLtHandle_t* handle;
  CHECK(handle_for(device, &handle));
  Key key{device, m, k, n, dtype, b_contiguous, alg_id};
  auto& slot = plans[key];
  if (!slot) {
    auto fresh = std::make_unique<Plan>();
    int status = build(handle, key, fresh.get());
    if (status) {
      plans.erase(key);
      return status;
    }
    slot = std::move(fresh);
  }
  *workspace_bytes = slot->workspace_bytes;
  return 0;
}

// C = A @ B on `stream` with the plan elas_cslt_plan built (CUSPARSE_STATUS_NOT_INITIALIZED if none).
int elas_cslt_mm(int device, const void* a_packed, const void* b, void* c, int64_t m, int64_t k, int64_t n,
                 int dtype, int b_contiguous, int alg_id, void* workspace, void* stream) {
  Plan* plan;
  cusparseLtHandle_t* handle;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = plans.find(Key{device, m, k, n, dtype, b_contiguous, alg_id});
    if (it == plans.end()) return CUSPARSE_STATUS_NOT_INITIALIZED;
    plan = it->second.get();
    handle = handles[device].get();
  }
  float alpha = 1.0f, beta = 0.0f;
  auto s = static_cast<cudaStream_t>(stream);
  return cusparseLtMatmul(handle, &plan->plan, &alpha, a_packed, b, &beta, c, c, workspace, &s, 1);
}

const char* elas_cslt_error(int status) { return cusparseLtGetErrorString(static_cast<cusparseStatus_t>(status)); }

}  // extern "C"
