#pragma once
// The container readers behind read_model_file (model_file_reader.h). Each takes the whole file mapped
// and returns its index, or throws sd::Error ERR_MODEL_FORMAT (or ERR_UNSAFE_PICKLE) with the path.
#include <memory>

#include "io/mapped_file.h"
#include "io/tensor_index.h"

namespace sd {

TensorIndex read_safetensors(const std::shared_ptr<const MappedFile> & file);
TensorIndex read_gguf(const std::shared_ptr<const MappedFile> & file);
TensorIndex read_checkpoint(const std::shared_ptr<const MappedFile> & file);  // PyTorch zip (torch.save)

} // namespace sd
