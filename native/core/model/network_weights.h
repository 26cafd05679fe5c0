#pragma once
// One network's weights (text encoder, UNet or VAE) as ggml tensors in one backend buffer.
// Each tensor is read from its file, converted to its storage type (io/weight_types.h) on the way,
// and stays in the buffer: graphs reference it, never copy it. With `keep_source` (offload) the
// buffer can be freed and filled again from the still-mapped files; the ggml tensors (what graphs
// are built from) stay valid throughout, only their data comes and goes.
#include <atomic>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/tensor_index.h"
#include "runtime/ggml_handles.h"
#include "runtime/residency.h"

namespace sd {

// A ggml tensor's shape outermost first (PyTorch's order), with as many dimensions as ggml
// counts (it cannot tell a trailing size-1 dimension from an absent one).
std::vector<int64_t> tensor_shape(const ggml_tensor * t);

// A LoRA change applied at run time to the output of the layer whose weight is "<prefix>.weight"
// (model/lora_state.h builds them; nets/nn_layers.h adds them to the graph). Tensors in ggml order:
//   low rank: down (in, r) for a linear weight, (kw, kh, in, r) for a convolution kernel; up
//             (r, out), already multiplied by scale · the call's weight. Output += up·(down ∗ x).
//   full:     delta in the weight's own layout, already scaled. Output += delta ∗ x.
struct RuntimeAdapter {
    ggml_tensor * down = nullptr;
    ggml_tensor * up = nullptr;
    ggml_tensor * delta = nullptr;
};

class NetworkWeights final : public ResidentWeights {
public:
    // `records` carry canonical names; only those starting with `prefix` are taken, and the
    // prefix is stripped (e.g. prefix "unet." turns "unet.conv_in.weight" into "conv_in.weight").
    // `requested` is the weightType asked for, or nullopt to keep each file's own type
    // (F16/F32/BF16/quantized as stored).
    // With `upload_now` false nothing is read until ensure_resident(); `keep_source` keeps the
    // file records (and so their maps) for release() / ensure_resident() cycles.
    NetworkWeights(const std::vector<TensorRecord> & records, const std::string & prefix, ggml_backend_t backend,
                   std::optional<WeightType> requested, bool keep_source = false, bool upload_now = true);

    // The tensor, or throws sd::Error ERR_MODEL_INCOMPLETE naming it.
    ggml_tensor * get(const std::string & name) const;
    // The tensor, or nullptr.
    ggml_tensor * find(const std::string & name) const;

    size_t size() const { return tensors_.size(); }
    // Bytes of the backend buffer now allocated (0 while released).
    size_t bytes() const override { return resident_bytes_.load() + adapter_bytes_.load(); }
    // Bytes the buffer takes when resident.
    size_t full_bytes() const { return full_bytes_; }
    bool resident() const { return buffer_ != nullptr || tensors_.empty(); }
    std::vector<std::string> names() const;

    // The run-time LoRA changes of "<prefix>.weight", or nullptr. Graphs read them while they are
    // built; only set_adapters changes them, while no graph of this network runs (LoraState's lock).
    const std::vector<RuntimeAdapter> * adapters(const std::string & prefix) const;
    bool has_adapters() const { return !adapters_.empty(); }
    // Replaces the run-time changes; `bytes` is the device memory their tensors take (counted in bytes()).
    void set_adapters(std::unordered_map<std::string, std::vector<RuntimeAdapter>> adapters, size_t bytes);

    // Frees the backend buffer (only when the sources were kept); tensors' data become null.
    // No graph that uses these weights may run meanwhile: Residency serialises that.
    void release() override;
    // Allocates and fills the buffer again if it was released. Throws ERR_OUT_OF_MEMORY or the
    // conversion's errors (the weights stay released then).
    void ensure_resident() override;

private:
    void upload();
    void release_buffer();
    // ERR_FILE_CHANGED if a source file was written to since it was mapped (MappedFile).
    void check_sources_unchanged() const;

    GgmlContextPtr ctx_;
    BufferPtr buffer_;
    ggml_backend_t backend_ = nullptr;
    std::string prefix_;
    std::unordered_map<std::string, ggml_tensor *> tensors_;
    std::vector<std::pair<TensorRecord, ggml_tensor *>> pending_;  // sources, kept only for offload
    bool keep_source_ = false;
    size_t full_bytes_ = 0;
    std::atomic<size_t> resident_bytes_{0};
    std::unordered_map<std::string, std::vector<RuntimeAdapter>> adapters_;
    std::atomic<size_t> adapter_bytes_{0};
};

} // namespace sd
