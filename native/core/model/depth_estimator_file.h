#pragma once
// A depth estimator's files (sdcore/depth_estimator.h lists the layouts) read into one set of
// canonical names and sizes, every tensor checked before anything is loaded. Canonical names are
// transformers' without "dpt.", with two renames so that shared layers read them:
//   backbone.stem.{conv,norm}, backbone.stages.S.layers.L.{downsample.conv,downsample.norm,
//       conv1..3,norm1..3}                                  the BiT ResNet
//   embeddings.{projection,cls_token,position_embeddings}
//   encoder.layers.N.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,mlp.fc1,mlp.fc2}
//                                                           CLIP's names (nets/clip_transformer.h:
//                                                           the same pre-norm layer)
//   neck.reassemble_stage.{readout_projects.I.0,layers.I.{projection,resize}}, neck.convs.I,
//   neck.fusion_stage.layers.I.{projection,residual_layer{1,2}.convolution{1,2}}, head.head.{0,2,4}
// MiDaS's fused qkv weight and bias are split into q, k and v records over the same bytes.
#include <string>
#include <vector>

#include "io/tensor_index.h"

namespace sd {

struct DepthEstimatorFile {
    std::string layout;                 // "transformers" or "midas"
    std::vector<std::string> files;     // read: config.json (when there was one), the weights
    std::vector<TensorRecord> tensors;  // canonical names
    int64_t image_size = 0, grid = 0, hidden = 0, layers = 0, heads = 0, fusion = 0;
    int64_t groups = 32;                // the backbone's GroupNorm groups
    std::vector<int64_t> stage_layers;  // bottlenecks per backbone stage (3 stages)
    int64_t taps[2] = {0, 0};           // the ViT layers the neck reads
    float layer_norm_eps = 1e-12f;
};

// `path`: see sdcore/depth_estimator.h. Throws sd::Error ERR_NO_DEPTH_ESTIMATOR when there are no
// estimator weights at all, ERR_DEPTH_ESTIMATOR_FORMAT naming the file when they are not a
// DPT-Hybrid (or the config disagrees with them), and the readers' ERR_FILE_NOT_FOUND,
// ERR_FILE_READ, ERR_UNSAFE_PICKLE.
DepthEstimatorFile open_depth_estimator(const std::string & path);

} // namespace sd
