#include "sdcore/networks.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "model/loaded_model.h"
#include "nets/nn_layers.h"
#include "ops/attention_cpu.h"
#include "runtime/graph_runner.h"
#include "sdcore/error.h"

namespace sd {

namespace {

constexpr float kNormEps = 1e-6f;  // every GroupNorm of SD's VAE
constexpr int64_t kMaxBatch = 64;
constexpr int64_t kMaxLatentSide = 1024;  // 8192-pixel images; beyond that nothing fits anyway

struct VaeGraph {
    ggml_context * ctx;
    const NetworkWeights & w;
    int groups;
    // On GPU backends the direct convolution: at full image resolution an unfolded input would
    // take 9× the layer's activations.
    nn::ConvPath path;
    bool cpu_graph;  // computed on the CPU backend: our own attention and norm ops may be used

    ggml_tensor * conv(const std::string & name, ggml_tensor * x, int stride, int padding) const {
        return nn::conv2d(ctx, w, name, x, stride, padding, path);
    }

    ggml_tensor * norm(const std::string & name, ggml_tensor * x, bool then_silu = false) const {
        return nn::group_norm(ctx, w, name, x, groups, kNormEps, cpu_graph, then_silu);
    }

    // ResnetBlock2D without time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), with a
    // 1×1 conv_shortcut on x when the channel count changes.
    ggml_tensor * resnet(const std::string & name, ggml_tensor * x) const {
        ggml_tensor * h = norm(name + ".norm1", x, true);
        h = conv(name + ".conv1", h, 1, 1);
        h = norm(name + ".norm2", h, true);
        h = conv(name + ".conv2", h, 1, 1);
        ggml_tensor * skip = w.find(name + ".conv_shortcut.weight") ? conv(name + ".conv_shortcut", x, 1, 0) : x;
        return ggml_add(ctx, skip, h);
    }

    // Single-head self-attention over the H·W positions, with the residual added.
    ggml_tensor * attention(const std::string & name, ggml_tensor * x) const {
        const int64_t width = x->ne[0], height = x->ne[1];
        ggml_tensor * seq = nn::to_sequence(ctx, norm(name + ".group_norm", x));
        ggml_tensor * q = nn::linear(ctx, w, name + ".to_q", seq);
        ggml_tensor * k = nn::linear(ctx, w, name + ".to_k", seq);
        ggml_tensor * v = nn::linear(ctx, w, name + ".to_v", seq);
        ggml_tensor * a = cpu_graph && nn::attention_cpu_enabled()
                              ? nn::attention_cpu(ctx, q, k, v, 1, 1.0f / std::sqrt(static_cast<float>(q->ne[0])))
                              : nn::attention(ctx, q, k, v, 1);
        ggml_tensor * o = nn::linear(ctx, w, name + ".to_out.0", a);
        return ggml_add(ctx, x, nn::from_sequence(ctx, o, width, height));
    }

    ggml_tensor * mid(const std::string & side, ggml_tensor * x) const {
        x = resnet(side + ".mid_block.resnets.0", x);
        x = attention(side + ".mid_block.attentions.0", x);
        return resnet(side + ".mid_block.resnets.1", x);
    }

    ggml_tensor * encoder(ggml_tensor * x, const VaeConfig & config) const {
        const int levels = static_cast<int>(config.block_channels.size());
        x = conv("encoder.conv_in", x, 1, 1);
        for (int i = 0; i < levels; ++i) {
            const std::string level = "encoder.down_blocks." + std::to_string(i);
            for (int j = 0; j < config.layers_per_block; ++j) x = resnet(level + ".resnets." + std::to_string(j), x);
            if (i < levels - 1) {
                // Downsample2D(padding=0): zero-pad one column right and one row below, 3×3 stride 2.
                x = ggml_pad(ctx, x, 1, 1, 0, 0);
                x = conv(level + ".downsamplers.0.conv", x, 2, 0);
            }
        }
        x = mid("encoder", x);
        x = norm("encoder.conv_norm_out", x, true);
        x = conv("encoder.conv_out", x, 1, 1);
        return conv("quant_conv", x, 1, 0);
    }

    ggml_tensor * decoder(ggml_tensor * z, const VaeConfig & config) const {
        const int levels = static_cast<int>(config.block_channels.size());
        ggml_tensor * x = conv("post_quant_conv", z, 1, 0);
        x = conv("decoder.conv_in", x, 1, 1);
        x = mid("decoder", x);
        for (int i = 0; i < levels; ++i) {
            const std::string level = "decoder.up_blocks." + std::to_string(i);
            for (int j = 0; j <= config.layers_per_block; ++j) x = resnet(level + ".resnets." + std::to_string(j), x);
            if (i < levels - 1) {
                x = ggml_upscale(ctx, x, 2, GGML_SCALE_MODE_NEAREST);
                x = conv(level + ".upsamplers.0.conv", x, 1, 1);
            }
        }
        x = norm("decoder.conv_norm_out", x, true);
        return conv("decoder.conv_out", x, 1, 1);
    }
};

std::string shape_text(const std::vector<int64_t> & shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

} // namespace

Vae::Vae(std::shared_ptr<const Model> model)
    : model_(std::move(model)), runner_(std::make_unique<GraphRunner>(model_->backend(Network::vae), model_->threads())) {
    runner_->bind(&model_->residency(), Network::vae);
}

Vae::~Vae() = default;

int Vae::downscale_factor() const { return 1 << (static_cast<int>(model_->config().vae.block_channels.size()) - 1); }

void Vae::check_decode_input(const std::vector<int64_t> & shape) const {
    const VaeConfig & c = model_->config().vae;
    if (shape.size() != 4 || shape[1] != c.latent_channels) {
        throw RangeError("Expected latents of shape [batch, " + std::to_string(c.latent_channels) +
                         ", height, width], got " + shape_text(shape));
    }
    if (shape[0] < 1 || shape[0] > kMaxBatch) {
        throw RangeError("Expected a latent batch of 1 to " + std::to_string(kMaxBatch) + ", got " + std::to_string(shape[0]));
    }
    if (shape[2] < 1 || shape[3] < 1 || shape[2] > kMaxLatentSide || shape[3] > kMaxLatentSide) {
        throw RangeError("Expected latent height and width of 1 to " + std::to_string(kMaxLatentSide) + ", got " +
                         shape_text(shape));
    }
}

void Vae::check_encode_input(const std::vector<int64_t> & shape) const {
    const VaeConfig & c = model_->config().vae;
    const int64_t f = downscale_factor();
    if (shape.size() != 4 || shape[1] != c.in_channels) {
        throw RangeError("Expected an image of shape [batch, " + std::to_string(c.in_channels) +
                         ", height, width], got " + shape_text(shape));
    }
    if (shape[0] < 1 || shape[0] > kMaxBatch) {
        throw RangeError("Expected an image batch of 1 to " + std::to_string(kMaxBatch) + ", got " + std::to_string(shape[0]));
    }
    if (shape[2] < f || shape[3] < f || shape[2] % f != 0 || shape[3] % f != 0 || shape[2] > kMaxLatentSide * f ||
        shape[3] > kMaxLatentSide * f) {
        throw RangeError("Expected image height and width to be multiples of " + std::to_string(f) + " from " +
                         std::to_string(f) + " to " + std::to_string(kMaxLatentSide * f) + ", got " + shape_text(shape));
    }
}

void Vae::check_input(Direction direction, const std::vector<int64_t> & shape) const {
    if (direction == Direction::decode) check_decode_input(shape);
    else check_encode_input(shape);
}

HostTensor Vae::decode(const TensorView & latents) { return run(Direction::decode, latents); }

HostTensor Vae::encode(const TensorView & image) { return run(Direction::encode, image); }

HostTensor Vae::run(Direction direction, const TensorView & input) {
    check_input(direction, input.shape);
    const bool decoding = direction == Direction::decode;
    const VaeConfig & config = model_->config().vae;
    const NetworkWeights & weights = model_->vae();
    const nn::ConvPath conv_path = nn::conv_path_for(model_->backend(Network::vae), nn::ConvPath::direct);
    const bool cpu = nn::is_cpu_backend(model_->backend(Network::vae));
    std::lock_guard<std::mutex> lock(mutex_);
    return runner_->run(
        [&](ggml_context * ctx, GraphInputs & inputs) {
            const auto & s = input.shape;
            ggml_tensor * x = inputs.add_f32(ctx, decoding ? "latents" : "image", input.data, {s[3], s[2], s[1], s[0]});
            const VaeGraph graph{ctx, weights, config.norm_groups, conv_path, cpu};
            return decoding ? graph.decoder(x, config) : graph.encoder(x, config);
        },
        4);
}

} // namespace sd
