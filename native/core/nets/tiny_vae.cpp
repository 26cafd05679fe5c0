#include "sdcore/tiny_vae.h"

#include <mutex>

#include "model/standalone_network.h"
#include "model/tiny_vae_file.h"
#include "nets/nn_layers.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

namespace {

constexpr int64_t kMaxBatch = 64;
constexpr int64_t kMaxLatentSide = 1024;
constexpr float kLatentMagnitude = 3.0f;  // the decoder's soft clamp: 3·tanh(z / 3)

std::string shape_text(const std::vector<int64_t> & shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

struct TinyVaeGraph {
    ggml_context * ctx;
    const NetworkWeights & w;
    nn::ConvPath path;

    ggml_tensor * conv(const std::string & prefix, ggml_tensor * x, int stride = 1, int padding = 1) const {
        return nn::conv2d(ctx, w, prefix, x, stride, padding, path);
    }

    // relu(conv.4(relu(conv.2(relu(conv.0(x))))) + skip(x))
    ggml_tensor * block(const TinyVaeLayer & layer, ggml_tensor * x) const {
        ggml_tensor * h = ggml_relu(ctx, conv(layer.prefix + ".conv.0", x));
        h = ggml_relu(ctx, conv(layer.prefix + ".conv.2", h));
        h = conv(layer.prefix + ".conv.4", h);
        ggml_tensor * skip = layer.skip ? conv(layer.prefix + ".skip", x, 1, 0) : x;
        return ggml_relu(ctx, ggml_add(ctx, h, skip));
    }

    ggml_tensor * encoder(const TinyVaeSide & side, ggml_tensor * x) const {
        x = ggml_scale_bias(ctx, x, 0.5f, 0.5f);  // [-1, 1] → [0, 1]
        const size_t n = side.layers.size();
        for (size_t i = 0; i < n; ++i) {
            const TinyVaeLayer & layer = side.layers[i];
            if (layer.kind == TinyVaeLayer::Kind::block) x = block(layer, x);
            else x = conv(layer.prefix, x, i == 0 || i + 1 == n ? 1 : 2, 1);  // the inner ones halve the size
        }
        return x;
    }

    ggml_tensor * decoder(const TinyVaeSide & side, ggml_tensor * z) const {
        ggml_tensor * x = ggml_scale(ctx, ggml_tanh(ctx, ggml_scale(ctx, z, 1.0f / kLatentMagnitude)), kLatentMagnitude);
        const size_t n = side.layers.size();
        for (size_t i = 0; i < n; ++i) {
            const TinyVaeLayer & layer = side.layers[i];
            if (layer.kind == TinyVaeLayer::Kind::block) {
                x = block(layer, x);
            } else if (i == 0) {
                x = ggml_relu(ctx, conv(layer.prefix, x));
            } else {
                if (i + 1 < n) x = ggml_upscale(ctx, x, 2, GGML_SCALE_MODE_NEAREST);  // before each inner conv
                x = conv(layer.prefix, x);
            }
        }
        return ggml_scale_bias(ctx, x, 2.0f, -1.0f);  // [0, 1] → [-1, 1]
    }
};

} // namespace

struct TinyVae::Impl {
    TinyVaeInfo info;
    TinyVaeFiles files;
    std::unique_ptr<StandaloneNetwork> net;
};

TinyVae::TinyVae(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TinyVae::~TinyVae() = default;

std::shared_ptr<TinyVae> TinyVae::load(const std::string & path, const TinyVaeLoadOptions & options) {
    auto impl = std::make_unique<Impl>();
    impl->files = open_tiny_vae(path);
    impl->net = std::make_unique<StandaloneNetwork>(impl->files.tensors, options.backend, options.weight_type, options.threads);
    TinyVaeInfo & info = impl->info;
    info.path = path;
    info.layout = impl->files.layout;
    info.files = impl->files.files;
    info.has_encoder = impl->files.has_encoder;
    info.has_decoder = impl->files.has_decoder;
    info.latent_channels = impl->files.latent_channels;
    info.downscale_factor = 1 << (info.has_decoder ? impl->files.decoder.resamplings : impl->files.encoder.resamplings);
    info.device = impl->net->device;
    log(LogLevel::info, "loaded TAESD %s (%s%s%s, %.2f MB on %s)", path.c_str(), info.has_encoder ? "encoder" : "",
        info.has_encoder && info.has_decoder ? " and " : "", info.has_decoder ? "decoder" : "", impl->net->weights->full_bytes() / 1e6,
        info.device.c_str());
    return std::shared_ptr<TinyVae>(new TinyVae(std::move(impl)));
}

const TinyVaeInfo & TinyVae::info() const { return impl_->info; }

void TinyVae::check_input(Direction direction, const std::vector<int64_t> & shape) const {
    const TinyVaeInfo & c = impl_->info;
    if (direction == Direction::decode) {
        if (!c.has_decoder) throw Error("ERR_TINY_VAE_NO_DECODER", "This TAESD has no decoder: " + c.path, c.path);
        if (shape.size() != 4 || shape[1] != c.latent_channels) {
            throw RangeError("Expected latents of shape [batch, " + std::to_string(c.latent_channels) + ", height, width], got " +
                             shape_text(shape));
        }
        if (shape[2] < 1 || shape[3] < 1 || shape[2] > kMaxLatentSide || shape[3] > kMaxLatentSide) {
            throw RangeError("Expected latent height and width of 1 to " + std::to_string(kMaxLatentSide) + ", got " + shape_text(shape));
        }
    } else {
        if (!c.has_encoder) throw Error("ERR_TINY_VAE_NO_ENCODER", "This TAESD has no encoder: " + c.path, c.path);
        const int64_t f = c.downscale_factor;
        if (shape.size() != 4 || shape[1] != c.image_channels) {
            throw RangeError("Expected an image of shape [batch, " + std::to_string(c.image_channels) + ", height, width], got " +
                             shape_text(shape));
        }
        if (shape[2] < f || shape[3] < f || shape[2] % f != 0 || shape[3] % f != 0 || shape[2] > kMaxLatentSide * f ||
            shape[3] > kMaxLatentSide * f) {
            throw RangeError("Expected image height and width to be multiples of " + std::to_string(f) + " from " + std::to_string(f) +
                             " to " + std::to_string(kMaxLatentSide * f) + ", got " + shape_text(shape));
        }
    }
    if (shape[0] < 1 || shape[0] > kMaxBatch) {
        throw RangeError("Expected a batch of 1 to " + std::to_string(kMaxBatch) + ", got " + std::to_string(shape[0]));
    }
}

HostTensor TinyVae::run(Direction direction, const TensorView & input) {
    check_input(direction, input.shape);
    if (input.data == nullptr) throw RangeError("Expected tensor data");
    Impl & impl = *impl_;
    const bool decoding = direction == Direction::decode;
    const nn::ConvPath path = nn::conv_path_for(impl.net->backend.get(), nn::ConvPath::direct);
    std::lock_guard<std::mutex> lock(impl.net->mutex);
    return impl.net->runner->run(
        [&](ggml_context * ctx, GraphInputs & inputs) {
            const auto & s = input.shape;
            ggml_tensor * x = inputs.add_f32(ctx, decoding ? "latents" : "image", input.data, {s[3], s[2], s[1], s[0]});
            const TinyVaeGraph graph{ctx, *impl.net->weights, path};
            return decoding ? graph.decoder(impl.files.decoder, x) : graph.encoder(impl.files.encoder, x);
        },
        4);
}

} // namespace sd
