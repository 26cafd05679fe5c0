#include "sdcore/system.h"

#include <string>

#include "runtime/backend_registry.h"
#include "runtime/ggml_handles.h"
#include "runtime/graph_runner.h"
#include "sdcore/error.h"

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
    GraphRunner runner(backend.get(), threads);
    return runner.run(
        [&](ggml_context * ctx, GraphInputs & inputs) {
            // ggml's ne[] lists the innermost dimension first: a row-major [M, K] matrix is ne = (K, M).
            ggml_tensor * ta = inputs.add_f32(ctx, "a", a.data, {k, m});
            ggml_tensor * tb = inputs.add_f32(ctx, "b", b.data, {n, k});
            // ggml_mul_mat(x, y) = y · xᵀ, so x must hold bᵀ as rows of length K.
            return ggml_mul_mat(ctx, ggml_cont(ctx, ggml_transpose(ctx, tb)), ta);
        },
        2);
}

} // namespace sd
