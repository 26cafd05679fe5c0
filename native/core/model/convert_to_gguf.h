#pragma once
// Conversion of any readable model (diffusers folder, original checkpoint, GGUF) to a GGUF file
// in canonical names with sdnode.* metadata, its weights stored by the weight-type rule of
// weight_types.h: the same types a load with that weightType gives.
#include <string>

#include "model/detection.h"

namespace sd {

struct ConvertOptions {
    ggml_type weight_type = GGML_TYPE_F16;
    DetectOptions detect;
    std::string vae_path;
};

struct ConvertReport {
    ModelConfig config;
    size_t tensor_count = 0;
    uint64_t bytes_written = 0;
};

ConvertReport convert_model(const std::string & input, const std::string & output, const ConvertOptions & options);

} // namespace sd
