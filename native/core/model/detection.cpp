#include "model/detection.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "io/string_util.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

const char * family_name(ModelFamily family) { return family == ModelFamily::sd1 ? "sd1" : "sd2"; }

const char * variant_name(ModelVariant variant) {
    switch (variant) {
        case ModelVariant::base: return "base";
        case ModelVariant::inpaint: return "inpaint";
        case ModelVariant::depth: return "depth";
    }
    return "base";
}

const char * prediction_type_name(PredictionType type) {
    return type == PredictionType::epsilon ? "epsilon" : "v_prediction";
}

const char * activation_name(TextActivation activation) {
    return activation == TextActivation::quick_gelu ? "quick_gelu" : "gelu";
}

std::optional<PredictionType> parse_prediction_type(const std::string & text) {
    if (text == "epsilon" || text == "eps") return PredictionType::epsilon;
    if (text == "v_prediction" || text == "v") return PredictionType::v_prediction;
    return std::nullopt;
}

PredictionType prediction_type_from_name(const std::string & text) {
    if (std::optional<PredictionType> type = parse_prediction_type(text)) return *type;
    throw RangeError("Expected a prediction type of epsilon or v_prediction but received \"" + text + "\"");
}

namespace {

std::string level_name(const char * prefix, int i, const char * suffix) {
    return std::string(prefix) + std::to_string(i) + suffix;
}

// The shape of a canonical tensor, or nullptr.
const std::vector<int64_t> * shape_of(const CanonicalModel & model, const std::string & name) {
    const TensorRecord * record = model.find(name);
    return record ? &record->shape : nullptr;
}

// Dimension `d` of a tensor, or `fallback` when the tensor (or dimension) is missing.
int dim(const CanonicalModel & model, const std::string & name, size_t d, int fallback) {
    const std::vector<int64_t> * shape = shape_of(model, name);
    if (!shape || shape->size() <= d || (*shape)[d] <= 0 || (*shape)[d] > (1 << 30)) return fallback;
    return static_cast<int>((*shape)[d]);
}

bool has_prefix(const CanonicalModel & model, const std::string & prefix) {
    return std::any_of(model.tensors.begin(), model.tensors.end(),
                       [&](const TensorRecord & t) { return t.name.compare(0, prefix.size(), prefix) == 0; });
}

// How many of the modules prefix0., prefix1., ... have tensors, counting from 0. Counting modules
// rather than one tensor each keeps a missing tensor from hiding its module: check_model then
// names the tensor.
int count_indexed(const CanonicalModel & model, const std::string & prefix) {
    int n = 0;
    while (n < 1000 && has_prefix(model, prefix + std::to_string(n) + ".")) ++n;
    return n;
}

// Output channels of a resnet: from whichever of its layers is there.
int resnet_channels(const CanonicalModel & model, const std::string & resnet, int fallback) {
    for (const char * layer : {".conv1.weight", ".conv2.weight", ".norm2.weight", ".conv1.bias"}) {
        const int c = dim(model, resnet + layer, 0, 0);
        if (c > 0) return c;
    }
    return fallback;
}

// The first UNet tensor whose name ends with `suffix`, in file order.
const TensorRecord * first_unet_tensor(const CanonicalModel & model, const char * suffix) {
    const size_t n = std::strlen(suffix);
    for (const TensorRecord & t : model.tensors) {
        if (starts_with(t.name, "unet.") && t.name.size() > n && t.name.compare(t.name.size() - n, n, suffix) == 0) return &t;
    }
    return nullptr;
}

const std::string * metadata(const CanonicalModel & model, const char * key) {
    auto it = model.hints.metadata.find(key);
    return it == model.hints.metadata.end() ? nullptr : &it->second;
}

// JSON config accessors: nullopt when the key is missing, null or of another type.
const json::Value * member(const std::shared_ptr<const json::Value> & config, const char * key) {
    if (!config) return nullptr;
    const json::Value * value = config->find(key);
    return value && !value->is_null() ? value : nullptr;
}

std::optional<int> config_int(const std::shared_ptr<const json::Value> & config, const char * key) {
    const json::Value * value = member(config, key);
    if (!value || !value->is_integer() || value->as_int64() < 0 || value->as_int64() > (1 << 30)) return std::nullopt;
    return static_cast<int>(value->as_int64());
}

std::optional<std::string> config_string(const std::shared_ptr<const json::Value> & config, const char * key) {
    const json::Value * value = member(config, key);
    if (!value) return std::nullopt;
    if (value->is_string()) return value->as_string();
    // Tokenizer configs write special tokens as AddedToken objects: {"content": "!", ...}.
    if (value->is_object()) {
        const json::Value * content = value->find("content");
        if (content && content->is_string()) return content->as_string();
    }
    return std::nullopt;
}

std::string number_text(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%g", value);
    return buffer;
}

// Our own `sdnode.*` metadata is written by convertModel; a value there that does not parse or
// is out of range means a damaged or hand-edited file, and using it (an infinite scaling factor
// turns every image into decode(zeros)) is worse than saying so.
std::optional<int> metadata_int(const CanonicalModel & model, const char * key, long min, long max) {
    const std::string * text = metadata(model, key);
    if (!text) return std::nullopt;
    char * end = nullptr;
    errno = 0;
    const long value = std::strtol(text->c_str(), &end, 10);
    if (text->empty() || *end != '\0' || errno == ERANGE || value < min || value > max) {
        throw Error("ERR_MODEL_FORMAT", model.path + ": metadata " + key + " is \"" + *text +
                                            "\"; expected an integer between " + std::to_string(min) + " and " +
                                            std::to_string(max), model.path);
    }
    return static_cast<int>(value);
}

std::optional<double> metadata_number(const CanonicalModel & model, const char * key, double min, double max) {
    const std::string * text = metadata(model, key);
    if (!text) return std::nullopt;
    char * end = nullptr;
    const double value = std::strtod(text->c_str(), &end);
    if (text->empty() || *end != '\0' || !std::isfinite(value) || value < min || value > max) {
        throw Error("ERR_MODEL_FORMAT", model.path + ": metadata " + key + " is \"" + *text +
                                            "\"; expected a number between " + number_text(min) + " and " +
                                            number_text(max), model.path);
    }
    return value;
}

// A config number that must be finite and in [min, max] when present.
std::optional<double> config_number(const CanonicalModel & model, const std::shared_ptr<const json::Value> & config,
                                    const char * file, const char * key, double min, double max) {
    const json::Value * value = member(config, key);
    if (!value) return std::nullopt;
    if (!value->is_number() || !std::isfinite(value->as_double()) || value->as_double() < min || value->as_double() > max) {
        const std::string given = value->is_number() ? number_text(value->as_double()) : json::describe(*value);
        throw Error("ERR_MODEL_FORMAT", model.path + ": " + file + " has " + key + " " + given +
                                            "; expected a number between " + number_text(min) + " and " +
                                            number_text(max), model.path);
    }
    return value->as_double();
}

int head_dim_for(int width) { return width % 64 == 0 ? 64 : 8; }

int heads_for(int width) { return std::max(1, width / head_dim_for(width)); }

[[noreturn]] void format_error(const CanonicalModel & model, const std::string & message) {
    throw Error("ERR_MODEL_FORMAT", message, model.path);
}

ModelFamily detect_family(const CanonicalModel & model, const UNetConfig & unet) {
    if (const std::string * family = metadata(model, "sdnode.family")) {
        if (*family == "sd1") return ModelFamily::sd1;
        if (*family == "sd2") return ModelFamily::sd2;
    }
    if (auto act = config_string(model.hints.text_encoder_config, "hidden_act")) {
        if (*act == "gelu") return ModelFamily::sd2;
        if (*act == "quick_gelu") return ModelFamily::sd1;
    }
    if (model.hints.open_clip) return ModelFamily::sd2;
    if (model.hints.clip) return ModelFamily::sd1;
    if (unet.context_dim == 1024) return ModelFamily::sd2;
    if (unet.context_dim == 768) return ModelFamily::sd1;
    return unet.linear_projection ? ModelFamily::sd2 : ModelFamily::sd1;
}

UNetConfig detect_unet(const CanonicalModel & model) {
    UNetConfig unet;
    const int levels = count_indexed(model, "unet.down_blocks.");
    if (levels == 0) format_error(model, model.path + " has no UNet down blocks (unet.down_blocks.0.*)");
    unet.in_channels = dim(model, "unet.conv_in.weight", 1, 4);
    unet.out_channels = dim(model, "unet.conv_out.weight", 0, 4);
    unet.layers_per_block = std::max(1, count_indexed(model, "unet.down_blocks.0.resnets."));
    int first_attention = -1;
    for (int i = 0; i < levels; ++i) {
        unet.block_channels.push_back(resnet_channels(model, level_name("unet.down_blocks.", i, ".resnets.0"), 320));
        const bool attention = has_prefix(model, level_name("unet.down_blocks.", i, ".attentions."));
        unet.cross_attention.push_back(attention);
        if (attention && first_attention < 0) first_attention = i;
    }
    const std::string attention = first_attention >= 0
                                      ? level_name("unet.down_blocks.", first_attention, ".attentions.0.")
                                      : std::string("unet.mid_block.attentions.0.");
    unet.transformer_depth = std::max(1, count_indexed(model, attention + "transformer_blocks."));
    const TensorRecord * to_k = first_unet_tensor(model, ".attn2.to_k.weight");
    unet.context_dim = to_k && to_k->shape.size() == 2 ? static_cast<int>(to_k->shape[1]) : 768;
    const TensorRecord * proj_in = first_unet_tensor(model, ".proj_in.weight");
    unet.linear_projection = proj_in && proj_in->shape.size() == 2;
    unet.time_embed_dim = dim(model, "unet.time_embedding.linear_1.weight", 0, 4 * unet.block_channels[0]);
    return unet;
}

// Heads per level: diffusers config, our metadata, or SD's fixed choice for the family.
void detect_unet_heads(const CanonicalModel & model, ModelFamily family, UNetConfig & unet) {
    const size_t levels = unet.block_channels.size();
    const auto & config = model.hints.unet_config;
    // diffusers: num_attention_heads when set, else attention_head_dim, which SD's configs use
    // for the head count (8 for SD1, [5, 10, 20, 20] for SD2).
    const json::Value * heads = member(config, "num_attention_heads");
    if (!heads) heads = member(config, "attention_head_dim");
    if (heads && heads->is_integer() && heads->as_int64() > 0) {
        unet.heads.assign(levels, static_cast<int>(heads->as_int64()));
        return;
    }
    if (heads && heads->is_array() && heads->as_array().size() == levels) {
        for (const json::Value & h : heads->as_array()) {
            if (!h.is_integer() || h.as_int64() <= 0) format_error(model, "Invalid unet/config.json in " + model.path + ": attention heads must be positive integers");
            unet.heads.push_back(static_cast<int>(h.as_int64()));
        }
        return;
    }
    if (const std::string * text = metadata(model, "sdnode.unet.heads")) {
        // "h0,h1,…": one positive count per level.
        std::vector<int> parsed;
        const char * p = text->c_str();
        bool valid = !text->empty();
        while (valid && *p) {
            char * end = nullptr;
            const long h = std::strtol(p, &end, 10);
            valid = end != p && h >= 1 && h <= 4096 && (*end == ',' || *end == '\0') && !(*end == ',' && end[1] == '\0');
            if (valid) parsed.push_back(static_cast<int>(h));
            p = *end == ',' ? end + 1 : end;
        }
        if (!valid || parsed.size() != levels) {
            format_error(model, model.path + ": metadata sdnode.unet.heads is \"" + *text + "\"; expected " +
                                    std::to_string(levels) + " comma-separated integers between 1 and 4096");
        }
        unet.heads = parsed;
        return;
    }
    for (int channels : unet.block_channels) {
        unet.heads.push_back(family == ModelFamily::sd1 ? 8 : heads_for(channels));
    }
}

VaeConfig detect_vae(const CanonicalModel & model) {
    VaeConfig vae;
    const int levels = count_indexed(model, "vae.encoder.down_blocks.");
    for (int i = 0; i < levels; ++i) {
        vae.block_channels.push_back(resnet_channels(model, level_name("vae.encoder.down_blocks.", i, ".resnets.0"), 128));
    }
    if (vae.block_channels.empty()) vae.block_channels = {128, 256, 512, 512};  // check_model reports the VAE missing
    vae.layers_per_block = std::max(1, count_indexed(model, "vae.encoder.down_blocks.0.resnets."));
    vae.in_channels = dim(model, "vae.encoder.conv_in.weight", 1, 3);
    vae.out_channels = dim(model, "vae.decoder.conv_out.weight", 0, 3);
    vae.latent_channels = dim(model, "vae.decoder.conv_in.weight", 1, 4);
    // SD's VAEs use 0.18215, later families 0.13 to 1.5; anything far outside is a broken file.
    constexpr double min_scaling = 1e-4, max_scaling = 100;
    if (auto scaling = config_number(model, model.hints.vae_config, "vae/config.json", "scaling_factor", min_scaling, max_scaling)) {
        vae.scaling_factor = *scaling;
    }
    if (auto scaling = metadata_number(model, "sdnode.vae.scaling_factor", min_scaling, max_scaling)) vae.scaling_factor = *scaling;
    // SD's VAEs use 32 groups; diffusers' AutoencoderKL takes any (the demo model's 32-wide VAE
    // uses 8, so that each group holds more than 2 channels).
    if (auto groups = config_number(model, model.hints.vae_config, "vae/config.json", "norm_num_groups", 1, 4096)) {
        if (*groups != std::floor(*groups)) {
            format_error(model, model.path + ": vae/config.json has norm_num_groups " + number_text(*groups) + "; expected an integer");
        }
        vae.norm_groups = static_cast<int>(*groups);
    }
    if (auto groups = metadata_int(model, "sdnode.vae.norm_groups", 1, 4096)) vae.norm_groups = *groups;
    for (size_t i = 0; i < vae.block_channels.size(); ++i) {
        if (vae.block_channels[i] % vae.norm_groups != 0) {
            format_error(model, model.path + ": VAE level " + std::to_string(i) + " has " + std::to_string(vae.block_channels[i]) +
                                    " channels, which do not divide into " + std::to_string(vae.norm_groups) + " groups");
        }
    }
    return vae;
}

TextEncoderConfig detect_text(const CanonicalModel & model, ModelFamily family) {
    TextEncoderConfig text;
    const auto & config = model.hints.text_encoder_config;
    text.vocab_size = dim(model, "text_encoder.embeddings.token_embedding.weight", 0, 49408);
    text.hidden = dim(model, "text_encoder.embeddings.token_embedding.weight", 1, family == ModelFamily::sd1 ? 768 : 1024);
    text.max_positions = dim(model, "text_encoder.embeddings.position_embedding.weight", 0, 77);
    text.intermediate = dim(model, "text_encoder.encoder.layers.0.mlp.fc1.weight", 0, 4 * text.hidden);
    text.layers = count_indexed(model, "text_encoder.encoder.layers.");
    if (text.layers == 0) text.layers = family == ModelFamily::sd1 ? 12 : 23;  // check_model reports them missing
    text.heads = config_int(config, "num_attention_heads").value_or(
        metadata_int(model, "sdnode.text_encoder.heads", 1, 4096).value_or(heads_for(text.hidden)));
    if (text.heads <= 0 || text.hidden % text.heads != 0) {
        format_error(model, model.path + ": the text encoder's hidden size " + std::to_string(text.hidden) +
                                " is not a multiple of its " + std::to_string(text.heads) + " heads");
    }
    text.activation = family == ModelFamily::sd1 ? TextActivation::quick_gelu : TextActivation::gelu;
    std::optional<std::string> act = config_string(config, "hidden_act");
    if (!act) {
        if (const std::string * m = metadata(model, "sdnode.text_encoder.activation")) act = *m;
    }
    if (act) {
        if (*act == "quick_gelu") text.activation = TextActivation::quick_gelu;
        else if (*act == "gelu") text.activation = TextActivation::gelu;
        else format_error(model, model.path + ": unsupported text encoder activation \"" + *act + "\"");
    }
    if (auto eps = config_number(model, config, "text_encoder/config.json", "layer_norm_eps", 1e-12, 0.1)) {
        text.layer_norm_eps = *eps;
    }
    // SD2's original files keep OpenCLIP's last layer, which SD does not use.
    text.layers_used = text.layers;
    if (model.layout == ModelLayout::ldm && family == ModelFamily::sd2 && text.layers > 1) text.layers_used = text.layers - 1;
    if (auto used = metadata_int(model, "sdnode.text_encoder.layers_used", 1, text.layers)) text.layers_used = *used;
    text.pad_token = family == ModelFamily::sd1 ? "<|endoftext|>" : "!";
    if (auto pad = config_string(model.hints.tokenizer_config, "pad_token")) {
        text.pad_token = *pad;
    } else if (const std::string * m = metadata(model, "sdnode.tokenizer.pad_token")) {
        text.pad_token = *m;
    }
    return text;
}

void detect_prediction(const CanonicalModel & model, const DetectOptions & options, ModelConfig & config) {
    auto set = [&](PredictionType type, std::string source) {
        config.prediction_type = type;
        config.prediction_source = std::move(source);
    };
    if (options.prediction_type) return set(*options.prediction_type, "option");
    if (const auto & scheduler = model.hints.scheduler_config) {
        const json::Value * value = member(scheduler, "prediction_type");
        if (!value) return set(PredictionType::epsilon, "scheduler config (default)");
        auto type = value->is_string() ? parse_prediction_type(value->as_string()) : std::nullopt;
        if (!type) {
            format_error(model, model.path + ": scheduler/scheduler_config.json has prediction_type " +
                                    (value->is_string() ? "\"" + value->as_string() + "\"" : json::describe(*value)) +
                                    "; supported: epsilon, v_prediction");
        }
        return set(*type, "scheduler config");
    }
    for (const char * key : {"sdnode.prediction_type", "modelspec.prediction_type"}) {
        if (const std::string * text = metadata(model, key)) {
            if (auto type = parse_prediction_type(*text)) return set(*type, std::string("metadata ") + key);
        }
    }
    if (const std::string * arch = metadata(model, "modelspec.architecture")) {
        // SAI model spec: "stable-diffusion-v2-768-v" names the v-prediction model.
        if (arch->size() > 2 && arch->compare(arch->size() - 2, 2, "-v") == 0) {
            return set(PredictionType::v_prediction, "metadata modelspec.architecture");
        }
    }
    if (model.hints.v_pred_marker) return set(PredictionType::v_prediction, "v_pred tensor");
    if (config.family == ModelFamily::sd1) return set(PredictionType::epsilon, "heuristic: SD1");
    if (config.variant != ModelVariant::base) return set(PredictionType::epsilon, "heuristic: SD2 inpainting/depth");
    const std::string * step = metadata(model, "global_step");
    if (step && *step == "875000") return set(PredictionType::epsilon, "heuristic: SD2 global_step 875000 (2.0-base)");
    set(PredictionType::v_prediction, "heuristic: SD2");
}

int detect_image_size(const CanonicalModel & model, const ModelConfig & config) {
    if (auto sample = config_int(model.hints.unet_config, "sample_size")) {
        if (*sample > 0 && *sample <= 1024 && config.vae.block_channels.size() <= 8) {
            return *sample << (config.vae.block_channels.size() - 1);
        }
    }
    if (auto size = metadata_int(model, "sdnode.image_size", 64, 16384)) return *size;
    return config.family == ModelFamily::sd2 && config.prediction_type == PredictionType::v_prediction ? 768 : 512;
}

// --- expected tensors -----------------------------------------------------------------------

class Expect {
public:
    explicit Expect(std::vector<ExpectedTensor> & out) : out_(out) {}

    void add(const std::string & name, std::vector<int64_t> shape) { out_.push_back({name, std::move(shape)}); }

    void norm(const std::string & name, int64_t channels) {
        add(name + ".weight", {channels});
        add(name + ".bias", {channels});
    }
    void linear(const std::string & name, int64_t out, int64_t in, bool bias = true) {
        add(name + ".weight", {out, in});
        if (bias) add(name + ".bias", {out});
    }
    void conv(const std::string & name, int64_t out, int64_t in, int64_t k) {
        add(name + ".weight", {out, in, k, k});
        add(name + ".bias", {out});
    }

    // UNet ResnetBlock2D (time_emb = 0: the VAE's, without time embedding projection).
    void resnet(const std::string & name, int64_t in, int64_t out, int64_t time_emb) {
        norm(name + ".norm1", in);
        conv(name + ".conv1", out, in, 3);
        if (time_emb) linear(name + ".time_emb_proj", out, time_emb);
        norm(name + ".norm2", out);
        conv(name + ".conv2", out, out, 3);
        if (in != out) conv(name + ".conv_shortcut", out, in, 1);
    }

    // Transformer2DModel as SD uses it: GroupNorm, projection in, self- and cross-attention,
    // GEGLU feed-forward, projection out.
    void transformer(const std::string & name, int64_t c, int64_t context, int depth, bool linear_projection) {
        norm(name + ".norm", c);
        if (linear_projection) linear(name + ".proj_in", c, c); else conv(name + ".proj_in", c, c, 1);
        for (int k = 0; k < depth; ++k) {
            const std::string block = name + ".transformer_blocks." + std::to_string(k);
            norm(block + ".norm1", c);
            linear(block + ".attn1.to_q", c, c, false);
            linear(block + ".attn1.to_k", c, c, false);
            linear(block + ".attn1.to_v", c, c, false);
            linear(block + ".attn1.to_out.0", c, c);
            norm(block + ".norm2", c);
            linear(block + ".attn2.to_q", c, c, false);
            linear(block + ".attn2.to_k", c, context, false);
            linear(block + ".attn2.to_v", c, context, false);
            linear(block + ".attn2.to_out.0", c, c);
            norm(block + ".norm3", c);
            linear(block + ".ff.net.0.proj", 8 * c, c);
            linear(block + ".ff.net.2", c, 4 * c);
        }
        if (linear_projection) linear(name + ".proj_out", c, c); else conv(name + ".proj_out", c, c, 1);
    }

    void vae_attention(const std::string & name, int64_t c) {
        norm(name + ".group_norm", c);
        linear(name + ".to_q", c, c);
        linear(name + ".to_k", c, c);
        linear(name + ".to_v", c, c);
        linear(name + ".to_out.0", c, c);
    }

private:
    std::vector<ExpectedTensor> & out_;
};

void expect_unet(Expect & e, const UNetConfig & u) {
    const int levels = static_cast<int>(u.block_channels.size());
    const int64_t t = u.time_embed_dim;
    const auto & ch = u.block_channels;
    e.conv("unet.conv_in", ch[0], u.in_channels, 3);
    e.linear("unet.time_embedding.linear_1", t, ch[0]);
    e.linear("unet.time_embedding.linear_2", t, t);
    std::vector<int64_t> skips = {ch[0]};  // channels of each skip connection, in push order
    int64_t prev = ch[0];
    for (int i = 0; i < levels; ++i) {
        const std::string level = "unet.down_blocks." + std::to_string(i);
        for (int j = 0; j < u.layers_per_block; ++j) {
            e.resnet(level + ".resnets." + std::to_string(j), j == 0 ? prev : ch[i], ch[i], t);
            if (u.cross_attention[i]) {
                e.transformer(level + ".attentions." + std::to_string(j), ch[i], u.context_dim, u.transformer_depth,
                              u.linear_projection);
            }
            skips.push_back(ch[i]);
        }
        if (i < levels - 1) {
            e.conv(level + ".downsamplers.0.conv", ch[i], ch[i], 3);
            skips.push_back(ch[i]);
        }
        prev = ch[i];
    }
    const int64_t mid = ch[levels - 1];
    e.resnet("unet.mid_block.resnets.0", mid, mid, t);
    e.transformer("unet.mid_block.attentions.0", mid, u.context_dim, u.transformer_depth, u.linear_projection);
    e.resnet("unet.mid_block.resnets.1", mid, mid, t);
    prev = mid;
    for (int i = 0; i < levels; ++i) {
        const int down = levels - 1 - i;  // the down level this up level mirrors
        const int64_t out = ch[down];
        const std::string level = "unet.up_blocks." + std::to_string(i);
        for (int j = 0; j <= u.layers_per_block; ++j) {
            const int64_t skip = skips.back();
            skips.pop_back();
            e.resnet(level + ".resnets." + std::to_string(j), (j == 0 ? prev : out) + skip, out, t);
            if (u.cross_attention[down]) {
                e.transformer(level + ".attentions." + std::to_string(j), out, u.context_dim, u.transformer_depth,
                              u.linear_projection);
            }
        }
        if (i < levels - 1) e.conv(level + ".upsamplers.0.conv", out, out, 3);
        prev = out;
    }
    e.norm("unet.conv_norm_out", ch[0]);
    e.conv("unet.conv_out", u.out_channels, ch[0], 3);
}

void expect_vae(Expect & e, const VaeConfig & v) {
    const int levels = static_cast<int>(v.block_channels.size());
    const auto & ch = v.block_channels;
    const int64_t z = v.latent_channels;
    e.conv("vae.encoder.conv_in", ch[0], v.in_channels, 3);
    int64_t prev = ch[0];
    for (int i = 0; i < levels; ++i) {
        const std::string level = "vae.encoder.down_blocks." + std::to_string(i);
        for (int j = 0; j < v.layers_per_block; ++j) e.resnet(level + ".resnets." + std::to_string(j), j == 0 ? prev : ch[i], ch[i], 0);
        if (i < levels - 1) e.conv(level + ".downsamplers.0.conv", ch[i], ch[i], 3);
        prev = ch[i];
    }
    const int64_t mid = ch[levels - 1];
    for (const char * side : {"vae.encoder", "vae.decoder"}) {
        const std::string s = side;
        if (s == "vae.decoder") e.conv(s + ".conv_in", mid, z, 3);
        e.resnet(s + ".mid_block.resnets.0", mid, mid, 0);
        e.vae_attention(s + ".mid_block.attentions.0", mid);
        e.resnet(s + ".mid_block.resnets.1", mid, mid, 0);
        if (s == "vae.encoder") {
            e.norm(s + ".conv_norm_out", mid);
            e.conv(s + ".conv_out", 2 * z, mid, 3);  // mean and log-variance
        }
    }
    e.conv("vae.quant_conv", 2 * z, 2 * z, 1);
    e.conv("vae.post_quant_conv", z, z, 1);
    prev = mid;
    for (int i = 0; i < levels; ++i) {
        const int64_t out = ch[levels - 1 - i];
        const std::string level = "vae.decoder.up_blocks." + std::to_string(i);
        for (int j = 0; j <= v.layers_per_block; ++j) e.resnet(level + ".resnets." + std::to_string(j), j == 0 ? prev : out, out, 0);
        if (i < levels - 1) e.conv(level + ".upsamplers.0.conv", out, out, 3);
        prev = out;
    }
    e.norm("vae.decoder.conv_norm_out", ch[0]);
    e.conv("vae.decoder.conv_out", v.out_channels, ch[0], 3);
}

void expect_text(Expect & e, const TextEncoderConfig & t) {
    const int64_t h = t.hidden;
    e.add("text_encoder.embeddings.token_embedding.weight", {t.vocab_size, h});
    e.add("text_encoder.embeddings.position_embedding.weight", {t.max_positions, h});
    for (int l = 0; l < t.layers_used; ++l) {
        const std::string layer = "text_encoder.encoder.layers." + std::to_string(l);
        for (const char * p : {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj", ".self_attn.out_proj"}) {
            e.linear(layer + p, h, h);
        }
        e.norm(layer + ".layer_norm1", h);
        e.norm(layer + ".layer_norm2", h);
        e.linear(layer + ".mlp.fc1", t.intermediate, h);
        e.linear(layer + ".mlp.fc2", h, t.intermediate);
    }
    e.norm("text_encoder.final_layer_norm", h);
}

// "name" or "name (in the file: original)" for a canonical tensor of `model`.
std::string describe_name(const CanonicalModel & model, const ModelConfig & config, const std::string & name) {
    std::string original;
    if (model.layout == ModelLayout::ldm) {
        original = ldm_original_name(name, config.unet.layers_per_block, config.unet.cross_attention,
                                     static_cast<int>(config.vae.block_channels.size()), model.hints.open_clip);
    }
    return original.empty() || original == name ? name : name + " (" + original + ")";
}

} // namespace

ModelConfig detect_model_config(const CanonicalModel & model, const DetectOptions & options) {
    if (!has_prefix(model, "unet.")) {
        throw Error("ERR_MODEL_INCOMPLETE", model.path + " has no UNet weights", model.path);
    }
    // SDXL's UNet adds time/size embeddings, the x4 upscaler a noise-level class embedding.
    if (has_prefix(model, "unet.add_embedding.") || has_prefix(model, "unet.class_embedding.")) {
        format_error(model, model.path + " is not a Stable Diffusion 1.x/2.x model: its UNet has " +
                                (has_prefix(model, "unet.add_embedding.") ? "SDXL's added embeddings" : "a class embedding") +
                                " (not supported)");
    }
    ModelConfig config;
    config.unet = detect_unet(model);
    config.family = detect_family(model, config.unet);
    detect_unet_heads(model, config.family, config.unet);
    switch (config.unet.in_channels) {
        case 4: config.variant = ModelVariant::base; break;
        case 9: config.variant = ModelVariant::inpaint; break;
        case 5: config.variant = ModelVariant::depth; break;
        default:
            format_error(model, model.path + ": a UNet with " + std::to_string(config.unet.in_channels) +
                                    " input channels is not supported (4: text-to-image, 9: inpainting, 5: depth)");
    }
    if (config.unet.out_channels != 4) {
        format_error(model, model.path + ": a UNet with " + std::to_string(config.unet.out_channels) +
                                " output channels is not supported (expected 4)");
    }
    for (size_t i = 0; i < config.unet.block_channels.size(); ++i) {
        const int c = config.unet.block_channels[i];
        const int h = config.unet.heads[i];
        if (c % config.unet.norm_groups != 0 || (config.unet.cross_attention[i] && c % h != 0)) {
            format_error(model, model.path + ": UNet level " + std::to_string(i) + " has " + std::to_string(c) +
                                    " channels, which do not divide into " + std::to_string(config.unet.norm_groups) +
                                    " groups and " + std::to_string(h) + " heads");
        }
    }
    config.vae = detect_vae(model);
    config.text = detect_text(model, config.family);
    detect_prediction(model, options, config);
    config.image_size = detect_image_size(model, config);
    return config;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig & config) {
    std::vector<ExpectedTensor> out;
    Expect e(out);
    expect_unet(e, config.unet);
    expect_vae(e, config.vae);
    expect_text(e, config.text);
    return out;
}

void check_model(const CanonicalModel & model, const ModelConfig & config) {
    std::vector<std::string> missing;
    for (const ExpectedTensor & expected : expected_tensors(config)) {
        const TensorRecord * record = model.find(expected.name);
        if (!record) {
            missing.push_back(expected.name);
            continue;
        }
        if (record->shape != expected.shape) {
            const std::string file = model.file_of(expected.name);
            throw Error("ERR_MODEL_FORMAT",
                        "Invalid model " + model.path + ": " + describe_name(model, config, expected.name) + " has shape " +
                            shape_text(record->shape) + ", expected " + shape_text(expected.shape) + " for this " +
                            family_name(config.family) + " model",
                        file);
        }
    }
    if (missing.empty()) return;
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + describe_name(model, config, missing[i]);
    if (missing.size() > 5) list += ", … (" + std::to_string(missing.size()) + " missing in all)";
    throw Error("ERR_MODEL_INCOMPLETE",
                "Incomplete model " + model.path + ": " + std::to_string(missing.size()) +
                    " tensors are missing: " + list,
                model.path);
}

std::map<std::string, std::string> config_metadata(const ModelConfig & config) {
    std::map<std::string, std::string> m;
    m["sdnode.family"] = family_name(config.family);
    m["sdnode.variant"] = variant_name(config.variant);
    m["sdnode.prediction_type"] = prediction_type_name(config.prediction_type);
    m["sdnode.image_size"] = std::to_string(config.image_size);
    std::string heads;
    for (size_t i = 0; i < config.unet.heads.size(); ++i) heads += (i ? "," : "") + std::to_string(config.unet.heads[i]);
    m["sdnode.unet.heads"] = heads;
    m["sdnode.text_encoder.heads"] = std::to_string(config.text.heads);
    m["sdnode.text_encoder.layers_used"] = std::to_string(config.text.layers_used);
    m["sdnode.text_encoder.activation"] = activation_name(config.text.activation);
    m["sdnode.tokenizer.pad_token"] = config.text.pad_token;
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.17g", config.vae.scaling_factor);
    m["sdnode.vae.scaling_factor"] = buffer;
    // Only when not SD's 32, so that converting a standard model gives the same file as before.
    if (config.vae.norm_groups != 32) m["sdnode.vae.norm_groups"] = std::to_string(config.vae.norm_groups);
    return m;
}

OpenedModel open_mapped_model(CanonicalModel model, const DetectOptions & options) {
    OpenedModel opened{std::move(model), {}, {}};
    opened.config = detect_model_config(opened.model, options);
    check_model(opened.model, opened.config);
    std::set<std::string> expected;
    for (const ExpectedTensor & t : expected_tensors(opened.config)) expected.insert(t.name);
    for (const TensorRecord & t : opened.model.tensors) {
        if (!expected.count(t.name)) opened.unused.push_back(t.name);
    }
    log(LogLevel::debug, "%s: %s %s, %s (%s), %s layout, %zu tensors", opened.model.path.c_str(),
        family_name(opened.config.family), variant_name(opened.config.variant),
        prediction_type_name(opened.config.prediction_type), opened.config.prediction_source.c_str(),
        layout_name(opened.model.layout), opened.model.tensors.size());
    return opened;
}

OpenedModel open_model(const std::string & path, const DetectOptions & options) {
    return open_mapped_model(map_model(path), options);
}

OpenedModel open_model_with_vae(const std::string & path, const DetectOptions & detect, const std::string & vae_path) {
    if (vae_path.empty()) return open_model(path, detect);

    CanonicalModel model = map_model(path);
    CanonicalModel vae = map_vae_file(vae_path);
    CanonicalModel merged = model;
    merged.tensors.clear();
    merged.source_names.clear();
    merged.by_name.clear();
    auto take = [&merged](const CanonicalModel & from, bool vae_tensors) {
        for (size_t i = 0; i < from.tensors.size(); ++i) {
            if (starts_with(from.tensors[i].name, "vae.") != vae_tensors) continue;
            merged.by_name[from.tensors[i].name] = merged.tensors.size();
            merged.tensors.push_back(from.tensors[i]);
            merged.source_names.push_back(from.source_names[i]);
        }
    };
    take(model, false);
    take(vae, true);
    return open_mapped_model(std::move(merged), detect);
}

} // namespace sd
