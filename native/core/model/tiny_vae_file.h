#pragma once
// TAESD's files (sdcore/tiny_vae.h lists the layouts) read into one set of tensors under
// diffusers' names ("encoder.layers.N.…", "decoder.layers.N.…"), and the structure those
// tensors describe, checked layer by layer before anything is loaded.
#include <string>
#include <vector>

#include "io/tensor_index.h"

namespace sd {

// One entry of an encoder's or decoder's layer list (diffusers' nn.Sequential index order).
struct TinyVaeLayer {
    enum class Kind { conv, block } kind = Kind::conv;
    std::string prefix;      // "decoder.layers.3"
    int64_t in = 0, out = 0; // channels
    bool bias = false;       // conv: has a bias (the stride-2 / upsampling convolutions have none)
    bool skip = false;       // block: a 1×1 skip convolution (channels change)
};

struct TinyVaeSide {
    std::vector<TinyVaeLayer> layers;
    int resamplings = 0;  // stride-2 convolutions (encoder) or ×2 upsamplings (decoder)
};

struct TinyVaeFiles {
    std::string layout;               // "diffusers" or "taesd"
    std::vector<std::string> files;   // read
    std::vector<TensorRecord> tensors;  // diffusers' names
    bool has_encoder = false, has_decoder = false;
    TinyVaeSide encoder, decoder;
    int latent_channels = 0;
};

// Throws sd::Error ERR_MODEL_FORMAT naming `path` when it is not a TAESD (or its halves disagree),
// and the readers' errors (ERR_FILE_NOT_FOUND, ERR_FILE_READ, ERR_UNSAFE_PICKLE).
TinyVaeFiles open_tiny_vae(const std::string & path);

} // namespace sd
