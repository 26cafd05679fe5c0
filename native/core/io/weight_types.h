#pragma once
// Which storage type each weight gets when a model is converted or loaded with a `weightType`
// (sdcore/model_config.h's WeightType). One rule for both, so a converted GGUF and a model
// quantized at load hold the same types.
#include <cstdint>
#include <string>
#include <vector>

#include "ggml.h"
#include "sdcore/model_config.h"

namespace sd {

ggml_type to_ggml_type(WeightType type);

// Our name for a ggml type: the WeightType's name ("q8_0"), else ggml's own ("q4_K", "i64").
const char * weight_type_name(ggml_type type);

// The type a tensor is stored as when `requested` is asked for:
// - 1-D tensors (norm weights, biases) stay f32: they are tiny and precision-sensitive.
// - f32 / f16 / bf16 requests apply to every other tensor.
// - Quantized requests apply to linear (2-D) weights whose rows are whole 32-element blocks.
//   Convolution kernels and embedding tables become f16: ggml's convolutions take f16/f32
//   kernels, and the embeddings are a small share of the model.
WeightType storage_type_for(const std::string & name, const std::vector<int64_t> & shape, WeightType requested);

} // namespace sd
