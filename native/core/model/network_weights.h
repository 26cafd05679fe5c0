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
    size_t bytes() const override { return resident_bytes_.load(); }
    // Bytes the buffer takes when resident.
    size_t full_bytes() const { return full_bytes_; }
    bool resident() const { return buffer_ != nullptr || tensors_.empty(); }
    std::vector<std::string> names() const;

    // Frees the backend buffer (only when the sources were kept); tensors' data become null.
    // No graph that uses these weights may run meanwhile: Residency serialises that.
    void release() override;
    // Allocates and fills the buffer again if it was released. Throws ERR_OUT_OF_MEMORY or the
    // conversion's errors (the weights stay released then).
    void ensure_resident() override;

private:
    void upload();
    void release_buffer();

    GgmlContextPtr ctx_;
    BufferPtr buffer_;
    ggml_backend_t backend_ = nullptr;
    std::string prefix_;
    std::unordered_map<std::string, ggml_tensor *> tensors_;
    std::vector<std::pair<TensorRecord, ggml_tensor *>> pending_;  // sources, kept only for offload
    bool keep_source_ = false;
    size_t full_bytes_ = 0;
    std::atomic<size_t> resident_bytes_{0};
};

} // namespace sd
