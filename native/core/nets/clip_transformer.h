#pragma once
// The transformer layer of both CLIP towers (transformers' CLIPEncoderLayer): pre-norm
// self-attention and MLP, each added back to its input. The text encoder runs it with a causal
// mask, the vision tower (the safety checker's) without one; everything else is the same, so
// both graphs are built from here.
//
//   x = x + out_proj(attention(q_proj, k_proj, v_proj of layer_norm1(x)))
//   x = x + fc2(activation(fc1(layer_norm2(x))))
//
// Weights under "<prefix>.layer_norm1", "<prefix>.self_attn.{q,k,v,out}_proj",
// "<prefix>.layer_norm2", "<prefix>.mlp.fc1/fc2" (PyTorch linear weights [out, in]). Run-time
// LoRA changes, where the weights carry any, are added to every linear layer's output.
#include <cstdint>
#include <string>

#include "ggml.h"
#include "model/network_weights.h"

namespace sd::nn {

struct ClipTransformerShape {
    int64_t hidden = 768;
    int64_t heads = 12;
    float layer_norm_eps = 1e-5f;
    bool quick_gelu = true;  // x·sigmoid(1.702·x) (OpenAI's CLIP); false: GELU with erf (OpenCLIP's)
    bool causal = false;     // each token attends to those before it only (the text tower)
};

// LayerNorm over the innermost dimension with "<name>.weight" / "<name>.bias", as ggml's norm,
// mul and add (the towers' graphs run on every backend).
ggml_tensor * clip_layer_norm(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x,
                              float eps);

// One layer: x ne = (hidden, tokens, batch) → the same shape.
ggml_tensor * clip_encoder_layer(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                                 const ClipTransformerShape & shape);

} // namespace sd::nn
