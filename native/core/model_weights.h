#pragma once
// A component's weights (text encoder, UNet or VAE) as ggml tensors in one backend buffer.
// Each tensor is read from its file once, converted to its storage type (weight_types.h) on the
// way, and stays in the buffer for the life of the model: graphs reference it, never copy it.
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml_handles.h"
#include "model_file.h"

namespace sd {

class ModelWeights {
public:
    // `records` carry canonical names; only those starting with `prefix` are taken, and the
    // prefix is stripped (e.g. prefix "unet." turns "unet.conv_in.weight" into "conv_in.weight").
    // `requested` is the weightType asked for, or GGML_TYPE_COUNT to keep each file's own type
    // (F16/F32/BF16/quantized as stored).
    ModelWeights(const std::vector<TensorRecord> & records, const std::string & prefix, ggml_backend_t backend,
                 ggml_type requested);

    // The tensor, or throws sd::Error ERR_MODEL_INCOMPLETE naming it.
    ggml_tensor * get(const std::string & name) const;
    // The tensor, or nullptr.
    ggml_tensor * find(const std::string & name) const;

    size_t size() const { return tensors_.size(); }
    size_t bytes() const;
    std::vector<std::string> names() const;

private:
    GgmlContextPtr ctx_;
    BufferPtr buffer_;
    std::unordered_map<std::string, ggml_tensor *> tensors_;
};

} // namespace sd
