#pragma once
// The depth estimator of SD 2's depth model: DPT-Hybrid (MiDaS 3.0), as transformers'
// DPTForDepthEstimation with is_hybrid=True computes it. Loaded on its own, with its own weights
// and device, beside (not inside) a model.
//
// Files (model/depth_estimator_file.cpp):
//   transformers  a diffusers depth folder's depth_estimator/ (config.json and model.safetensors
//                 or pytorch_model.bin), that weight file alone, or a folder that holds
//                 depth_estimator/ (a diffusers depth folder)
//   MiDaS         the original 512-depth-ema checkpoint (the estimator under
//                 "depth_model.model.", MiDaS's names: timm's ResNetV2 + ViT under
//                 "pretrained.model.", act_postprocess, "scratch."), or MiDaS's own
//                 dpt_hybrid file (the same names without the prefix). These carry no config:
//                 GroupNorm has 32 groups, heads are 64 wide, LayerNorm's eps is timm's 1e-6, and
//                 the neck taps ViT blocks ⌊3L/4⌋ − 1 and L − 1 (8 and 11 of 12), as in MiDaS.
//
// Maths (pixels [B, 3, S, S] as DPTImageProcessor gives them; S = 16 × the position grid, 384
// for the real model):
//   backbone  BiT ResNet (bottleneck, not pre-activation): weight-standardised convolutions
//             (per output channel, eps 1e-8) with TensorFlow's "same" padding, GroupNorm + ReLU;
//             stem 7×7/2 and 3×3/2 max pool, stages at 1/4, 1/8, 1/16
//   ViT       1×1 projection of the 1/16 map, class token, position embeddings, pre-norm layers
//             (GELU); tapped at two layers
//   neck      the two first stages as they are; each tap's tokens concatenated with the class
//             token, linear + GELU, 1×1 convolution, the last one a 3×3/2 convolution; a 3×3
//             convolution each to the fusion width; four fusion blocks (pre-activated residual
//             units, bilinear ×2 with corners aligned, 1×1 projection), deepest first
//   head      3×3 conv, bilinear ×2, 3×3 conv to 32, ReLU, 1×1 conv to 1, ReLU
// Output: predicted depth [B, S, S] (relative inverse depth: larger is nearer).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdcore/model_config.h"
#include "sdcore/tensor.h"

namespace sd {

struct DepthEstimatorLoadOptions {
    std::string backend = "auto";           // as ModelLoadOptions::backend, or a device name
    std::optional<WeightType> weight_type;  // nullopt: keep the files' own types
    int threads = 0;                        // CPU threads, 0 = default
};

struct DepthEstimatorInfo {
    std::string path;                // as given
    std::string layout;              // "transformers" or "midas"
    std::vector<std::string> files;  // read (config.json first when there was one)
    int image_size = 384;            // the side of the network's input and output
    int hidden = 768;
    int layers = 12;
    int heads = 12;
    int fusion = 256;                // the neck's width
    std::string device;              // ggml's device name ("CPU", "Vulkan0")
};

class DepthEstimator {
public:
    static constexpr int64_t kMaxBatch = 16;

    // Throws sd::Error ERR_FILE_NOT_FOUND / ERR_FILE_READ, ERR_NO_DEPTH_ESTIMATOR (with the path)
    // for a file or folder without any estimator weights (a depth model saved without them),
    // ERR_DEPTH_ESTIMATOR_FORMAT for weights that are not a DPT-Hybrid this engine runs,
    // ERR_UNSAFE_PICKLE, ERR_BACKEND_UNAVAILABLE, ERR_OUT_OF_MEMORY.
    static std::shared_ptr<DepthEstimator> load(const std::string & path, const DepthEstimatorLoadOptions & options);
    ~DepthEstimator();
    DepthEstimator(const DepthEstimator &) = delete;
    DepthEstimator & operator=(const DepthEstimator &) = delete;

    const DepthEstimatorInfo & info() const;

    // sd::RangeError unless the shape is [B, 3, image_size, image_size] with 1 ≤ B ≤ kMaxBatch.
    void check_input(const std::vector<int64_t> & shape) const;

    // Pixel values → predicted depth [B, image_size, image_size]. Checks included; calls are
    // serialised.
    HostTensor estimate(const TensorView & pixels);

    struct Impl;

private:
    explicit DepthEstimator(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace sd
