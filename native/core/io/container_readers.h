#pragma once
// The container readers behind read_model_file (tensor_index.h). Each takes the whole file mapped
// and returns its index, or throws sd::Error ERR_MODEL_FORMAT (or ERR_UNSAFE_PICKLE) with the path.
#include <memory>

#include "io/mapped_file.h"
#include "io/tensor_index.h"

namespace sd {

TensorIndex read_safetensors(const std::shared_ptr<const MappedFile> & file);
TensorIndex read_gguf(const std::shared_ptr<const MappedFile> & file);
TensorIndex read_checkpoint(const std::shared_ptr<const MappedFile> & file);  // PyTorch zip (torch.save)

// Bytes per element of the non-block types the readers accept (F32, F16, BF16, F64, I8…I64).
size_t plain_type_size(ggml_type type);

// Product of `shape`, or -1 if a dimension is negative or the product (times `element_size`
// bytes) overflows int64.
int64_t checked_element_count(const std::vector<int64_t> & shape, uint64_t element_size);

} // namespace sd
