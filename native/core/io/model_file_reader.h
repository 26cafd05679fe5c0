#pragma once
// Reads a model file of any container into a TensorIndex, choosing the reader
// (container_readers.h) by the file's first bytes, not its extension.
#include <memory>
#include <string>

#include "io/mapped_file.h"

#include "io/tensor_index.h"

namespace sd {

// Throws sd::Error with code ERR_MODEL_FORMAT (and the path) on anything malformed,
// ERR_UNSAFE_PICKLE for a checkpoint whose pickle names anything but torch's state-dict globals,
// and ERR_FILE_NOT_FOUND / ERR_FILE_READ when the file cannot be opened.
TensorIndex read_model_file(const std::string & path);

// The same for a file already mapped (or bytes in memory, MappedFile::view): ERR_MODEL_FORMAT
// and ERR_UNSAFE_PICKLE as above.
TensorIndex read_model_file(const std::shared_ptr<const MappedFile> & file);

} // namespace sd
