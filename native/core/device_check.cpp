#include "device_check.h"

#include <string>

#include "backend_registry.h"
#include "error.h"
#include "ggml_handles.h"

namespace sd {

static void check_matrix(const TensorView & t, const char * name) {
    if (t.shape.size() != 2 || t.shape[0] < 1 || t.shape[1] < 1) {
        throw RangeError(std::string("Expected ") + name + " to be a non-empty 2-D tensor");
    }
}

HostTensor matmul_on_device(const std::string & device_name, const TensorView & a, const TensorView & b, int threads) {
    check_matrix(a, "a");
    check_matrix(b, "b");
    const int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
    if (b.shape[0] != k) {
        throw RangeError("Expected b to have " + std::to_string(k) + " rows but it has " + std::to_string(b.shape[0]));
    }

    ggml_backend_dev_t device = find_device(device_name);
    BackendPtr backend(init_backend(device, threads));

    ggml_init_params params = {ggml_tensor_overhead() * 8 + ggml_graph_overhead(), nullptr, true};
    GgmlContextPtr ctx(ggml_init(params));
    // ggml's ne[] lists the innermost dimension first: a row-major [M, K] matrix is ne = (K, M).
    ggml_tensor * ta = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, k, m);
    ggml_tensor * tb = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, n, k);
    // ggml_mul_mat(x, y) = y · xᵀ, so x must hold bᵀ as rows of length K.
    ggml_tensor * bt = ggml_cont(ctx.get(), ggml_transpose(ctx.get(), tb));
    ggml_tensor * out = ggml_mul_mat(ctx.get(), bt, ta);
    ggml_cgraph * graph = ggml_new_graph(ctx.get());
    ggml_build_forward_expand(graph, out);

    BufferPtr buffer(ggml_backend_alloc_ctx_tensors(ctx.get(), backend.get()));
    if (!buffer) throw Error("ERR_OUT_OF_MEMORY", "Could not allocate device memory for the check");
    ggml_backend_tensor_set(ta, a.data, 0, ggml_nbytes(ta));
    ggml_backend_tensor_set(tb, b.data, 0, ggml_nbytes(tb));
    if (ggml_backend_graph_compute(backend.get(), graph) != GGML_STATUS_SUCCESS) {
        throw Error("ERR_COMPUTE", "The device check failed on " + device_name);
    }

    HostTensor result({m, n});
    ggml_backend_tensor_get(out, result.data.data(), 0, ggml_nbytes(out));
    return result;
}

} // namespace sd
