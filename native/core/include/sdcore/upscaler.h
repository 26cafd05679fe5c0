#pragma once
// Real-ESRGAN's upscaler network (RRDBNet, ESRGAN's generator as Real-ESRGAN trains it), on its
// own: loaded from its own file with its own weights and device, independent of any model.
//
// Files (model/upscaler_file.cpp): a PyTorch checkpoint (.pth, read by the safe unpickler) whose
// state dict lies under "params_ema", else "params", else at the top level, or a safetensors
// file with the same names (conv_first, body.N.rdbK.convJ, conv_body, conv_up1, conv_up2,
// conv_hr, conv_last). The sizes come from the weights: features = conv_first's outputs, growth =
// rdb1.conv1's outputs, blocks = how many body.N there are, scale from conv_first's inputs
// (3 channels: ×4; 12: ×2 after a 2× pixel-unshuffle; 48: ×1 after a 4× one).
//
// Maths (the published architecture, LeakyReLU slope 0.2 throughout):
//   rdb(x)     x1..x4 = lrelu(convK(cat(x, x1, …))), x5 = conv5(cat(x, x1..x4)); x5·0.2 + x
//   rrdb(x)    rdb3(rdb2(rdb1(x)))·0.2 + x
//   net(x)     f = conv_first(unshuffle(x)); f = f + conv_body(rrdb…(f));
//              f = lrelu(conv_up1(nearest×2(f))); f = lrelu(conv_up2(nearest×2(f)));
//              conv_last(lrelu(conv_hr(f)))
// Images are RGB in [0, 1]; the output is not clamped.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdcore/model_config.h"
#include "sdcore/tensor.h"

namespace sd {

struct UpscalerLoadOptions {
    std::string backend = "auto";           // as ModelLoadOptions::backend, or a device name
    std::optional<WeightType> weight_type;  // nullopt: keep the file's own types
    int threads = 0;                        // CPU threads, 0 = default
};

struct UpscalerInfo {
    std::string path;          // as given
    std::string format;        // "safetensors" or "checkpoint"
    std::string architecture;  // "RRDBNet"
    std::string state_dict;    // where the weights were: "params_ema", "params" or "" (top level)
    int scale = 4;             // output pixels per input pixel along each side
    int features = 64;         // num_feat
    int growth = 32;           // num_grow_ch
    int blocks = 23;           // num_block (RRDBs)
    int image_channels = 3;    // num_in_ch before the unshuffle, num_out_ch
    int input_multiple = 1;    // the image's sides must be multiples of this (the unshuffle's factor)
    std::string device;        // ggml's device name ("CPU", "Vulkan0")
};

class Upscaler {
public:
    // Input sides the network takes in one call (a tile); callers tile larger images.
    static constexpr int64_t kMaxSide = 4096;
    static constexpr int64_t kMaxBatch = 16;

    // Throws sd::Error ERR_FILE_NOT_FOUND / ERR_FILE_READ, ERR_UPSCALER_FORMAT (with the path) for
    // anything that is not an RRDBNet, ERR_UNSAFE_PICKLE, ERR_BACKEND_UNAVAILABLE, ERR_OUT_OF_MEMORY.
    static std::shared_ptr<Upscaler> load(const std::string & path, const UpscalerLoadOptions & options);
    ~Upscaler();
    Upscaler(const Upscaler &) = delete;
    Upscaler & operator=(const Upscaler &) = delete;

    const UpscalerInfo & info() const;

    // sd::RangeError for a shape the network cannot take: [B, 3, H, W], 1 ≤ B ≤ kMaxBatch, H and W
    // multiples of input_multiple from input_multiple to kMaxSide.
    void check_input(const std::vector<int64_t> & shape) const;

    // image [B, 3, H, W] in [0, 1] → [B, 3, scale·H, scale·W] (not clamped). Checks included;
    // calls are serialised.
    HostTensor run(const TensorView & image);

    struct Impl;

private:
    explicit Upscaler(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace sd
