#include "sdcore/networks.h"

#include <cmath>
#include <string>

#include "model/loaded_model.h"
#include "model/lora_state.h"
#include "nets/nn_layers.h"
#include "nets/unet_layers.h"
#include "ops/attention_cpu.h"
#include "ops/geglu.h"
#include "runtime/graph_runner.h"
#include "sdcore/error.h"

namespace sd {

namespace {

using namespace unet_ops;

std::string shape_text(const std::vector<int64_t> & shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

constexpr float kResnetEps = 1e-5f;       // diffusers' norm_eps (ResnetBlock2D, norm_out)
constexpr float kTransformerNormEps = 1e-6f;  // Transformer2DModel's GroupNorm
constexpr float kLayerNormEps = 1e-5f;    // BasicTransformerBlock's LayerNorms

// Builds the forward graph of one call. Weight names are diffusers' (without "unet.").
class Builder {
public:
    Builder(ggml_context * ctx, const UNetConfig & config, const NetworkWeights & weights, bool flash, nn::ConvPath conv_path,
            bool cpu_graph)
        : ctx_(ctx), config_(config), weights_(weights), flash_(flash), conv_path_(conv_path), cpu_graph_(cpu_graph) {}

    ggml_tensor * w(const std::string & name) const { return weights_.get(name); }

    // ResnetBlock2D: x [W, H, Cin, N], temb_act = SiLU(time embedding) [T, N].
    ggml_tensor * resnet(const std::string & p, ggml_tensor * x, ggml_tensor * temb_act) {
        const int groups = config_.norm_groups;
        ggml_tensor * h = nn::group_norm(ctx_, weights_, p + "norm1", x, groups, kResnetEps, cpu_graph_, true);
        h = nn::conv2d(ctx_, weights_, p + "conv1", h, 1, 1, conv_path_);
        ggml_tensor * t = nn::linear(ctx_, weights_, p + "time_emb_proj", temb_act);  // [C, N]
        h = ggml_add(ctx_, h, ggml_reshape_4d(ctx_, t, 1, 1, t->ne[0], t->ne[1]));
        h = nn::group_norm(ctx_, weights_, p + "norm2", h, groups, kResnetEps, cpu_graph_, true);
        h = nn::conv2d(ctx_, weights_, p + "conv2", h, 1, 1, conv_path_);
        ggml_tensor * shortcut = x;
        if (weights_.find(p + "conv_shortcut.weight") != nullptr) {
            shortcut = nn::conv2d(ctx_, weights_, p + "conv_shortcut", x, 1, 0, conv_path_);
        }
        return ggml_add(ctx_, shortcut, h);
    }

    // Attention (diffusers' Attention, default processor): q from x, k and v from context (or x).
    ggml_tensor * attn(const std::string & p, ggml_tensor * x, ggml_tensor * context, int heads) {
        ggml_tensor * kv_in = context != nullptr ? context : x;
        ggml_tensor * q = nn::linear(ctx_, weights_, p + "to_q", x);
        ggml_tensor * k = nn::linear(ctx_, weights_, p + "to_k", kv_in);
        ggml_tensor * v = nn::linear(ctx_, weights_, p + "to_v", kv_in);
        ggml_tensor * o = cpu_graph_ && !flash_ && nn::attention_cpu_enabled()
                              ? nn::attention_cpu(ctx_, q, k, v, heads, 1.0f / std::sqrt(static_cast<float>(q->ne[0] / heads)))
                              : nn::attention(ctx_, q, k, v, heads, flash_);
        return nn::linear(ctx_, weights_, p + "to_out.0", o);
    }

    // BasicTransformerBlock: x [C, T, N].
    ggml_tensor * transformer_block(const std::string & p, ggml_tensor * x, ggml_tensor * context, int heads) {
        ggml_tensor * h = nn::layer_norm(ctx_, weights_, p + "norm1", x, kLayerNormEps, cpu_graph_);
        x = ggml_add(ctx_, x, attn(p + "attn1.", h, nullptr, heads));
        h = nn::layer_norm(ctx_, weights_, p + "norm2", x, kLayerNormEps, cpu_graph_);
        x = ggml_add(ctx_, x, attn(p + "attn2.", h, context, heads));
        h = nn::layer_norm(ctx_, weights_, p + "norm3", x, kLayerNormEps, cpu_graph_);
        // GEGLU: proj → halves (hidden, gate) → hidden · gelu(gate), exact (erf) GELU; the
        // swapped op applies the activation to the second half.
        h = nn::linear(ctx_, weights_, p + "ff.net.0.proj", h);
        h = cpu_graph_ ? nn::geglu_erf_cpu(ctx_, h) : ggml_geglu_erf_swapped(ctx_, h);
        h = nn::linear(ctx_, weights_, p + "ff.net.2", h);
        return ggml_add(ctx_, x, h);
    }

    // proj_in / proj_out on a sequence: linear (SD2) or a 1x1 convolution (SD1), which on a
    // token sequence is the same product.
    ggml_tensor * projection(const std::string & p, ggml_tensor * x) {
        if (config_.linear_projection) return nn::linear(ctx_, weights_, p, x);
        ggml_tensor * y = linear(ctx_, x, conv1x1_as_linear(ctx_, w(p + ".weight")), weights_.find(p + ".bias"));
        return nn::add_linear_adapters(ctx_, weights_, p, x, y);
    }

    // Transformer2DModel: x [W, H, C, N] → same shape.
    ggml_tensor * transformer(const std::string & p, ggml_tensor * x, ggml_tensor * context, int heads) {
        ggml_tensor * h = nn::group_norm(ctx_, weights_, p + "norm", x, config_.norm_groups, kTransformerNormEps, cpu_graph_);
        h = projection(p + "proj_in", nn::to_sequence(ctx_, h));
        for (int d = 0; d < config_.transformer_depth; ++d) {
            h = transformer_block(p + "transformer_blocks." + std::to_string(d) + ".", h, context, heads);
        }
        h = projection(p + "proj_out", h);
        return ggml_add(ctx_, nn::from_sequence(ctx_, h, x->ne[0], x->ne[1]), x);
    }

    ggml_tensor * forward(ggml_tensor * sample, ggml_tensor * temb_sin, ggml_tensor * context) {
        const UNetConfig & cfg = config_;
        const int levels = static_cast<int>(cfg.block_channels.size());

        ggml_tensor * temb = nn::linear(ctx_, weights_, "time_embedding.linear_1", temb_sin);
        temb = ggml_silu(ctx_, temb);
        temb = nn::linear(ctx_, weights_, "time_embedding.linear_2", temb);
        ggml_tensor * temb_act = ggml_silu(ctx_, temb);  // every resnet's time_emb_proj takes SiLU(emb)

        ggml_tensor * x = conv2d_f32(ctx_, sample, w("conv_in.weight"), w("conv_in.bias"), 1, 1);
        x = nn::add_conv_adapters(ctx_, weights_, "conv_in", sample, x, 1, 1, conv_path_);
        std::vector<ggml_tensor *> skips{x};

        for (int i = 0; i < levels; ++i) {
            const std::string p = "down_blocks." + std::to_string(i) + ".";
            for (int j = 0; j < cfg.layers_per_block; ++j) {
                x = resnet(p + "resnets." + std::to_string(j) + ".", x, temb_act);
                if (cfg.cross_attention[i]) x = transformer(p + "attentions." + std::to_string(j) + ".", x, context, cfg.heads[i]);
                skips.push_back(x);
            }
            if (i + 1 < levels) {
                x = nn::conv2d(ctx_, weights_, p + "downsamplers.0.conv", x, 2, 1, conv_path_);
                skips.push_back(x);
            }
        }

        x = resnet("mid_block.resnets.0.", x, temb_act);
        x = transformer("mid_block.attentions.0.", x, context, cfg.heads.back());
        x = resnet("mid_block.resnets.1.", x, temb_act);

        for (int i = 0; i < levels; ++i) {
            const int level = levels - 1 - i;
            const std::string p = "up_blocks." + std::to_string(i) + ".";
            for (int j = 0; j <= cfg.layers_per_block; ++j) {
                ggml_tensor * skip = skips.back();
                skips.pop_back();
                x = ggml_concat(ctx_, x, skip, 2);
                x = resnet(p + "resnets." + std::to_string(j) + ".", x, temb_act);
                if (cfg.cross_attention[level]) {
                    x = transformer(p + "attentions." + std::to_string(j) + ".", x, context, cfg.heads[level]);
                }
            }
            if (i + 1 < levels) {
                // As diffusers: resize to the next skip's size (×2 when the sizes divide evenly).
                const ggml_tensor * next = skips.back();
                x = resize_nearest(ctx_, x, next->ne[0], next->ne[1]);
                x = nn::conv2d(ctx_, weights_, p + "upsamplers.0.conv", x, 1, 1, conv_path_);
            }
        }

        x = nn::group_norm(ctx_, weights_, "conv_norm_out", x, cfg.norm_groups, kResnetEps, cpu_graph_, true);
        ggml_tensor * out = conv2d_f32(ctx_, x, w("conv_out.weight"), w("conv_out.bias"), 1, 1);
        return nn::add_conv_adapters(ctx_, weights_, "conv_out", x, out, 1, 1, conv_path_);
    }

private:
    ggml_context * ctx_;
    const UNetConfig & config_;
    const NetworkWeights & weights_;
    bool flash_;
    nn::ConvPath conv_path_;
    bool cpu_graph_;  // computed on the CPU backend: our own custom ops may be used
};

} // namespace

std::vector<float> timestep_embedding(const std::vector<float> & timesteps, int dim) {
    const int half = dim / 2;
    const float neg_log_period = static_cast<float>(-std::log(10000.0));
    std::vector<float> freqs(half);
    for (int i = 0; i < half; ++i) {
        float exponent = neg_log_period * static_cast<float>(i);
        exponent = exponent / static_cast<float>(half);
        freqs[i] = std::exp(exponent);
    }
    std::vector<float> out(timesteps.size() * static_cast<size_t>(dim), 0.0f);
    for (size_t b = 0; b < timesteps.size(); ++b) {
        float * row = out.data() + b * dim;
        for (int i = 0; i < half; ++i) {
            const float arg = timesteps[b] * freqs[i];
            row[i] = std::cos(arg);
            row[half + i] = std::sin(arg);
        }
    }
    return out;
}

UNet::UNet(std::shared_ptr<const Model> model, UNetOptions options)
    : model_(std::move(model)), config_(model_->config().unet), weights_(model_->unet()), options_(options),
      runner_(std::make_unique<GraphRunner>(model_->backend(Network::unet), model_->threads(), 32768)) {
    runner_->bind(&model_->residency(), Network::unet);
}

UNet::~UNet() = default;

void UNet::validate(const TensorView & sample, const std::vector<float> & timesteps, const TensorView & context) const {
    const UNetConfig & cfg = config_;
    if (sample.shape.size() != 4) {
        throw RangeError("Expected sample to have shape [batch, " + std::to_string(cfg.in_channels) +
                         ", height, width] but received " + shape_text(sample.shape));
    }
    const int64_t batch = sample.shape[0], channels = sample.shape[1], h = sample.shape[2], wd = sample.shape[3];
    if (channels != cfg.in_channels) {
        throw RangeError("Expected sample to have " + std::to_string(cfg.in_channels) + " channels (dimension 1) but received " +
                         shape_text(sample.shape));
    }
    if (batch < 1 || batch > max_batch) {
        throw RangeError("Expected a sample batch of 1 to " + std::to_string(max_batch) + " but received " + shape_text(sample.shape));
    }
    if (h < 1 || wd < 1 || h > max_side || wd > max_side) {
        throw RangeError("Expected sample height and width between 1 and " + std::to_string(max_side) + " but received " +
                         shape_text(sample.shape));
    }
    if (sample.data == nullptr || sample.size() != batch * channels * h * wd) throw RangeError("The sample has no data");

    if (context.shape.size() != 3 || context.shape[0] != batch || context.shape[2] != cfg.context_dim || context.shape[1] < 1 ||
        context.shape[1] > max_tokens) {
        throw RangeError("Expected context to have shape [" + std::to_string(batch) + ", tokens (1 to " +
                         std::to_string(max_tokens) + "), " + std::to_string(cfg.context_dim) + "] but received " +
                         shape_text(context.shape));
    }
    if (context.data == nullptr) throw RangeError("The context has no data");

    if (timesteps.size() != 1 && static_cast<int64_t>(timesteps.size()) != batch) {
        throw RangeError("Expected 1 or " + std::to_string(batch) + " timesteps but received " + std::to_string(timesteps.size()));
    }
    for (float t : timesteps) {
        if (!std::isfinite(t) || t < 0.0f || t > 1000.0f) {
            throw RangeError("Expected timesteps between 0 and 1000 but received " + std::to_string(t));
        }
    }

    // What the weights must agree on (the loader checked their shapes against the config).
    const size_t levels = cfg.block_channels.size();
    if (levels == 0 || cfg.cross_attention.size() != levels || cfg.heads.size() != levels || cfg.layers_per_block < 1 ||
        cfg.transformer_depth < 1 || cfg.norm_groups < 1) {
        throw Error("ERR_MODEL_FORMAT", "The UNet configuration is inconsistent");
    }
    for (size_t i = 0; i < levels; ++i) {
        if (cfg.heads[i] < 1 || cfg.block_channels[i] % cfg.heads[i] != 0 || cfg.block_channels[i] % cfg.norm_groups != 0) {
            throw Error("ERR_MODEL_FORMAT", "The UNet's channels do not divide into its heads and groups");
        }
    }
}

HostTensor UNet::predict(const TensorView & sample, const std::vector<float> & timesteps, const TensorView & context,
                         const LoraSet & loras) {
    validate(sample, timesteps, context);
    const int64_t batch = sample.shape[0];
    std::vector<float> t(static_cast<size_t>(batch), timesteps[0]);
    if (timesteps.size() == t.size()) t = timesteps;
    const int tdim = config_.block_channels[0];
    std::vector<float> temb = timestep_embedding(t, tdim);

    ggml_backend_t backend = model_->backend(Network::unet);
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_lock<std::shared_mutex> lora_lock = lora_state(*model_).use(Network::unet, loras);
    return runner_->run(
        [&](ggml_context * ctx, GraphInputs & inputs) {
            ggml_tensor * x = inputs.add_f32(ctx, "sample", sample.data, {sample.shape[3], sample.shape[2], sample.shape[1], batch});
            ggml_tensor * e = inputs.add_f32(ctx, "timestep_embedding", temb.data(), {tdim, batch});
            ggml_tensor * c = inputs.add_f32(ctx, "context", context.data, {context.shape[2], context.shape[1], batch});
            Builder builder(ctx, config_, weights_, options_.flash_attention,
                            nn::conv_path_for(backend, nn::ConvPath::im2col), nn::is_cpu_backend(backend));
            return builder.forward(x, e, c);
        },
        4);
}

size_t UNet::compute_buffer_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return runner_->compute_buffer_bytes();
}

} // namespace sd
