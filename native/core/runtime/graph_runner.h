#pragma once
// Runs ggml graphs on one backend. A network's forward pass is written as a build function that
// declares its inputs and returns its output; the runner allocates the intermediate tensors with
// an allocator it keeps between calls (so steps of a sampling loop reuse the same memory),
// uploads the inputs, computes and downloads the output.
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/ggml_handles.h"
#include "runtime/residency.h"
#include "sdcore/tensor.h"

namespace sd {

class GraphInputs {
public:
    // `data` must stay valid until the graph has run; `bytes` must equal ggml_nbytes(tensor).
    void add(ggml_tensor * tensor, const void * data, size_t bytes);
    // Convenience for a float32 input of the given ggml shape (innermost first).
    ggml_tensor * add_f32(ggml_context * ctx, const char * name, const float * data, std::vector<int64_t> ne);

private:
    friend class GraphRunner;
    struct Entry {
        ggml_tensor * tensor;
        const void * data;
        size_t bytes;
    };
    std::vector<Entry> entries_;
};

class GraphRunner final : public ComputeBuffer {
public:
    using BuildFn = std::function<ggml_tensor *(ggml_context *, GraphInputs &)>;

    static constexpr size_t kDefaultMaxNodes = 16384;

    // `backend` must outlive the runner. `threads` applies to CPU backends (0 = default).
    GraphRunner(ggml_backend_t backend, int threads, size_t max_nodes = kDefaultMaxNodes);
    ~GraphRunner();
    GraphRunner(const GraphRunner &) = delete;
    GraphRunner & operator=(const GraphRunner &) = delete;

    // Makes every run() enter `network` in `residency` first (which loads offloaded weights) and
    // lets offload free this runner's compute buffer. `residency` must outlive the runner.
    void bind(Residency * residency, Network network);

    // Builds, allocates and runs the graph; returns the output as a host tensor in PyTorch order
    // with `rank` dimensions (ggml cannot tell a trailing size-1 dimension from an absent one).
    HostTensor run(const BuildFn & build, int rank);

    // Bytes held by the compute allocator (peak over the calls since the last release()).
    size_t compute_buffer_bytes() const override { return compute_bytes_.load(); }

    // Frees the compute buffer; the next run allocates it again. Not while run() is in progress
    // (Residency guarantees that under offload).
    void release() override;

    // Frees the compute buffer unless a run() is in progress (on another thread); true if it did.
    bool release_if_idle() override;

private:
    ggml_backend_t backend_;
    size_t max_nodes_;
    GallocrPtr allocator_;
    std::mutex run_mutex_;  // held by run()
    Residency * residency_ = nullptr;
    Network network_ = Network::unet;
    // Read by memory reports from other threads while a run may be reallocating the buffer.
    std::atomic<size_t> compute_bytes_{0};
};

} // namespace sd
