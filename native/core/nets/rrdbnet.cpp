// Real-ESRGAN's RRDBNet (sdcore/upscaler.h) as a ggml graph.
#include <mutex>

#include "model/standalone_network.h"
#include "model/upscaler_file.h"
#include "nets/nn_layers.h"
#include "runtime/log.h"
#include "sdcore/error.h"
#include "sdcore/upscaler.h"

namespace sd {

namespace {

constexpr float kSlope = 0.2f;          // LeakyReLU's negative slope
constexpr float kResidualScale = 0.2f;  // each dense block's and each RRDB's residual scale
constexpr size_t kMaxNodes = 32768;

std::string shape_text(const std::vector<int64_t> & shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

struct RrdbGraph {
    ggml_context * ctx;
    const NetworkWeights & w;
    nn::ConvPath path;

    ggml_tensor * conv(const std::string & prefix, ggml_tensor * x) const { return nn::conv2d(ctx, w, prefix, x, 1, 1, path); }
    ggml_tensor * lrelu(ggml_tensor * x) const { return ggml_leaky_relu(ctx, x, kSlope, false); }

    // x5·0.2 + x, each convolution taking x and every output before it, concatenated in order.
    ggml_tensor * dense_block(const std::string & prefix, ggml_tensor * x) const {
        ggml_tensor * all = x;
        for (int c = 1; c <= 4; ++c) all = ggml_concat(ctx, all, lrelu(conv(prefix + ".conv" + std::to_string(c), all)), 2);
        ggml_tensor * x5 = conv(prefix + ".conv5", all);
        return ggml_add(ctx, ggml_scale(ctx, x5, kResidualScale), x);
    }

    ggml_tensor * rrdb(const std::string & prefix, ggml_tensor * x) const {
        ggml_tensor * h = x;
        for (int r = 1; r <= 3; ++r) h = dense_block(prefix + ".rdb" + std::to_string(r), h);
        return ggml_add(ctx, ggml_scale(ctx, h, kResidualScale), x);
    }

    ggml_tensor * forward(const UpscalerFile & net, ggml_tensor * x) const {
        ggml_tensor * feat = conv("conv_first", x);
        ggml_tensor * body = feat;
        for (int b = 0; b < net.blocks; ++b) body = rrdb("body." + std::to_string(b), body);
        feat = ggml_add(ctx, feat, conv("conv_body", body));
        feat = lrelu(conv("conv_up1", ggml_upscale(ctx, feat, 2, GGML_SCALE_MODE_NEAREST)));
        feat = lrelu(conv("conv_up2", ggml_upscale(ctx, feat, 2, GGML_SCALE_MODE_NEAREST)));
        return conv("conv_last", lrelu(conv("conv_hr", feat)));
    }
};

// PyTorch's pixel_unshuffle: [B, C, H, W] → [B, C·r², H/r, W/r], out[b, c·r² + i·r + j, y, x] =
// in[b, c, y·r + i, x·r + j].
HostTensor pixel_unshuffle(const TensorView & in, int r) {
    const int64_t B = in.shape[0], C = in.shape[1], H = in.shape[2], W = in.shape[3];
    const int64_t h = H / r, w = W / r;
    HostTensor out({B, C * r * r, h, w});
    float * o = out.data.data();
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t c = 0; c < C; ++c) {
            const float * plane = in.data + (b * C + c) * H * W;
            for (int i = 0; i < r; ++i) {
                for (int j = 0; j < r; ++j) {
                    for (int64_t y = 0; y < h; ++y) {
                        const float * row = plane + (y * r + i) * W + j;
                        for (int64_t x = 0; x < w; ++x) *o++ = row[x * r];
                    }
                }
            }
        }
    }
    return out;
}

} // namespace

struct Upscaler::Impl {
    UpscalerInfo info;
    UpscalerFile file;
    std::unique_ptr<StandaloneNetwork> net;
};

Upscaler::Upscaler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Upscaler::~Upscaler() = default;

std::shared_ptr<Upscaler> Upscaler::load(const std::string & path, const UpscalerLoadOptions & options) {
    auto impl = std::make_unique<Impl>();
    impl->file = open_upscaler(path);
    impl->net = std::make_unique<StandaloneNetwork>(impl->file.tensors, options.backend, options.weight_type, options.threads, kMaxNodes);
    UpscalerInfo & info = impl->info;
    const UpscalerFile & f = impl->file;
    info.path = path;
    info.format = f.format;
    info.architecture = "RRDBNet";
    info.state_dict = f.state_dict;
    info.scale = f.scale;
    info.features = f.features;
    info.growth = f.growth;
    info.blocks = f.blocks;
    info.image_channels = f.out_channels;
    info.input_multiple = f.unshuffle;
    info.device = impl->net->device;
    log(LogLevel::info, "loaded upscaler %s (RRDBNet ×%d, %d blocks, %d features, %.2f MB on %s)", path.c_str(), info.scale,
        info.blocks, info.features, impl->net->weights->full_bytes() / 1e6, info.device.c_str());
    return std::shared_ptr<Upscaler>(new Upscaler(std::move(impl)));
}

const UpscalerInfo & Upscaler::info() const { return impl_->info; }

void Upscaler::check_input(const std::vector<int64_t> & shape) const {
    const UpscalerInfo & c = impl_->info;
    if (shape.size() != 4 || shape[1] != c.image_channels) {
        throw RangeError("Expected an image of shape [batch, " + std::to_string(c.image_channels) + ", height, width], got " +
                         shape_text(shape));
    }
    const int64_t m = c.input_multiple;
    if (shape[2] < m || shape[3] < m || shape[2] % m != 0 || shape[3] % m != 0 || shape[2] > kMaxSide || shape[3] > kMaxSide) {
        throw RangeError("Expected image height and width " + (m > 1 ? "to be multiples of " + std::to_string(m) + " " : std::string()) +
                         "from " + std::to_string(m) + " to " + std::to_string(kMaxSide) + ", got " + shape_text(shape));
    }
    if (shape[0] < 1 || shape[0] > kMaxBatch) {
        throw RangeError("Expected a batch of 1 to " + std::to_string(kMaxBatch) + ", got " + std::to_string(shape[0]));
    }
}

HostTensor Upscaler::run(const TensorView & image) {
    check_input(image.shape);
    if (image.data == nullptr) throw RangeError("Expected tensor data");
    Impl & impl = *impl_;
    const nn::ConvPath path = nn::conv_path_for(impl.net->backend.get(), nn::ConvPath::direct);
    HostTensor unshuffled;
    TensorView input = image;
    if (impl.file.unshuffle > 1) {
        unshuffled = pixel_unshuffle(image, impl.file.unshuffle);
        input = unshuffled.view();
    }
    std::lock_guard<std::mutex> lock(impl.net->mutex);
    return impl.net->runner->run(
        [&](ggml_context * ctx, GraphInputs & inputs) {
            const auto & s = input.shape;
            ggml_tensor * x = inputs.add_f32(ctx, "image", input.data, {s[3], s[2], s[1], s[0]});
            const RrdbGraph graph{ctx, *impl.net->weights, path};
            return graph.forward(impl.file, x);
        },
        4);
}

} // namespace sd
