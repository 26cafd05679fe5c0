#include "sdcore/depth_estimator.h"

#include <mutex>

#include "io/string_util.h"
#include "model/depth_estimator_file.h"
#include "model/standalone_network.h"
#include "nets/dpt.h"
#include "nets/nn_layers.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

struct DepthEstimator::Impl {
    DepthEstimatorInfo info;
    DepthEstimatorFile file;
    std::unique_ptr<StandaloneNetwork> net;
};

DepthEstimator::DepthEstimator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DepthEstimator::~DepthEstimator() = default;

std::shared_ptr<DepthEstimator> DepthEstimator::load(const std::string & path, const DepthEstimatorLoadOptions & options) {
    auto impl = std::make_unique<Impl>();
    impl->file = open_depth_estimator(path);
    impl->net = std::make_unique<StandaloneNetwork>(impl->file.tensors, options.backend, options.weight_type, options.threads);
    const DepthEstimatorFile & f = impl->file;
    DepthEstimatorInfo & info = impl->info;
    info.path = path;
    info.layout = f.layout;
    info.files = f.files;
    info.image_size = static_cast<int>(f.image_size);
    info.hidden = static_cast<int>(f.hidden);
    info.layers = static_cast<int>(f.layers);
    info.heads = static_cast<int>(f.heads);
    info.fusion = static_cast<int>(f.fusion);
    info.device = impl->net->device;
    log(LogLevel::info, "loaded depth estimator %s (DPT-Hybrid, %s layout, ViT %d layers of %d, %d px, %.2f MB on %s)", path.c_str(),
        info.layout.c_str(), info.layers, info.hidden, info.image_size, impl->net->weights->full_bytes() / 1e6, info.device.c_str());
    return std::shared_ptr<DepthEstimator>(new DepthEstimator(std::move(impl)));
}

const DepthEstimatorInfo & DepthEstimator::info() const { return impl_->info; }

void DepthEstimator::check_input(const std::vector<int64_t> & shape) const {
    const int64_t s = impl_->info.image_size;
    if (shape.size() != 4 || shape[1] != 3 || shape[2] != s || shape[3] != s) {
        throw RangeError("Expected pixel values of shape [batch, 3, " + std::to_string(s) + ", " + std::to_string(s) + "], got " +
                         shape_text(shape));
    }
    if (shape[0] < 1 || shape[0] > kMaxBatch) {
        throw RangeError("Expected a batch of 1 to " + std::to_string(kMaxBatch) + ", got " + std::to_string(shape[0]));
    }
}

HostTensor DepthEstimator::estimate(const TensorView & pixels) {
    check_input(pixels.shape);
    if (pixels.data == nullptr) throw RangeError("Expected tensor data");
    Impl & impl = *impl_;
    const nn::ConvPath path = nn::conv_path_for(impl.net->backend.get(), nn::ConvPath::im2col);
    const bool cpu = nn::is_cpu_backend(impl.net->backend.get());
    std::lock_guard<std::mutex> lock(impl.net->mutex);
    return impl.net->runner->run(
        [&](ggml_context * ctx, GraphInputs & inputs) {
            const auto & s = pixels.shape;
            ggml_tensor * x = inputs.add_f32(ctx, "pixels", pixels.data, {s[3], s[2], s[1], s[0]});
            return nn::dpt_depth(ctx, *impl.net->weights, impl.file, x, path, cpu);
        },
        3);
}

} // namespace sd
