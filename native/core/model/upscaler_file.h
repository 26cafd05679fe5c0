#pragma once
// An upscaler's file (sdcore/upscaler.h lists the layouts) read into one set of tensors under
// the network's own names (the state dict's prefix removed), and the RRDBNet those tensors
// describe, checked tensor by tensor before anything is loaded.
#include <string>
#include <vector>

#include "io/tensor_index.h"

namespace sd {

struct UpscalerFile {
    std::string format;                 // "safetensors", "checkpoint" or "gguf"
    std::string state_dict;             // "params_ema", "params" or "" (the top level)
    std::vector<TensorRecord> tensors;  // "conv_first.weight", "body.0.rdb1.conv1.weight", …
    int in_channels = 3;                // conv_first's inputs: 3, 12 (2× unshuffle) or 48 (4×)
    int out_channels = 3;
    int features = 0;
    int growth = 0;
    int blocks = 0;
    int unshuffle = 1;                  // the pixel-unshuffle factor: 1, 2 or 4
    int scale = 4;                      // 4 / unshuffle · 4 … i.e. 4, 2 or 1
};

// Throws sd::Error ERR_UPSCALER_FORMAT naming `path` when it is not an RRDBNet (or the container
// is unreadable), and the readers' ERR_FILE_NOT_FOUND, ERR_FILE_READ, ERR_UNSAFE_PICKLE.
UpscalerFile open_upscaler(const std::string & path);

} // namespace sd
