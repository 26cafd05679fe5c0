#pragma once
// Writes tensors and string metadata to a GGUF file, converting each tensor to the storage type
// asked for (f32, f16, bf16 or one of ggml's 32-element block quantizations). Tensors are pulled
// one at a time through a callback, so converting a model never holds more than one tensor.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ggml.h"

namespace sd {

struct GgufTensorSource {
    std::string name;                // shorter than GGML_MAX_NAME bytes, unique
    std::vector<int64_t> shape;      // outermost first, 1 to 4 dimensions, each ≥ 1
    ggml_type type = GGML_TYPE_F16;  // see is_gguf_write_type
    // Fills `out` with the tensor's element_count(shape) values as float32.
    std::function<void(float * out)> read;
};

struct GgufWriteReport {
    // Tensors a quantized type was asked for whose rows (innermost dimension) are not a whole
    // number of 32-element blocks: they are stored as f16 instead.
    std::vector<std::string> kept_f16;
};

// F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_0, Q4_1.
bool is_gguf_write_type(ggml_type type);

// Throws sd::RangeError for invalid sources (names, shapes, types, reserved metadata keys) before
// anything is written, ERR_FILE_WRITE if the file cannot be written (a partial file is removed),
// and whatever a source's `read` throws.
GgufWriteReport write_gguf(const std::string & path, const std::vector<GgufTensorSource> & tensors,
                           const std::map<std::string, std::string> & metadata);

} // namespace sd
