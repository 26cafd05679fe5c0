#include "model/depth_estimator_file.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include "io/json.h"
#include "io/model_file_reader.h"
#include "io/string_util.h"
#include "sdcore/error.h"

namespace sd {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxWidth = 8192;
constexpr int64_t kMaxLayers = 256;
constexpr int64_t kMaxGrid = 64;        // 1024 px: 4097 tokens, bounds attention's memory
constexpr int64_t kPatch = 16;          // the backbone's stride at the ViT's input
constexpr int64_t kStages = 3;          // BiT stages at 1/4, 1/8, 1/16
constexpr int64_t kHeadWidth = 64;      // ViT-B/L/H; used only when no config names the heads
constexpr int64_t kMidasGroups = 32;    // timm's GroupNormAct in MiDaS's ResNetV2
constexpr float kMidasLayerNormEps = 1e-6f;  // timm's ViT
constexpr float kTransformersLayerNormEps = 1e-12f;  // DPTConfig's default

// Where MiDaS's estimator sits inside SD 2's depth checkpoint (LatentDepth2ImageDiffusion's
// depth_model, a MiDaSInference whose `model` is the DPT).
constexpr const char * kLdmPrefix = "depth_model.model.";

[[noreturn]] void not_estimator(const std::string & path, const std::string & why) {
    throw Error("ERR_DEPTH_ESTIMATOR_FORMAT",
                "Not a DPT-Hybrid depth estimator: " + path + ": " + why +
                    ". Expected transformers' DPTForDepthEstimation (is_hybrid) as a diffusers depth folder's "
                    "depth_estimator/, or MiDaS's dpt_hybrid weights (alone or under depth_model. in SD 2's depth checkpoint)",
                path);
}

[[noreturn]] void no_estimator(const std::string & path, const std::string & why) {
    throw Error("ERR_NO_DEPTH_ESTIMATOR", "No depth estimator in " + path + ": " + why, path);
}

bool is_float(ggml_type type) { return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16; }

// One rename: a prefix of the source name → a prefix of the canonical one.
struct Rename {
    const char * from;
    const char * to;
};

// The first rename whose `from` starts `name`, applied; nullopt if none does.
std::optional<std::string> rename(const std::string & name, std::initializer_list<Rename> renames) {
    for (const Rename & r : renames) {
        if (starts_with(name, r.from)) return std::string(r.to) + name.substr(std::string(r.from).size());
    }
    return std::nullopt;
}

// "N.rest" → {N, rest}; N < 0 when the name does not start with a number.
std::pair<int64_t, std::string> split_index(const std::string & s) {
    const size_t dot = s.find('.');
    if (dot == std::string::npos || dot == 0 || dot > 4) return {-1, s};
    int64_t n = 0;
    for (size_t i = 0; i < dot; ++i) {
        if (s[i] < '0' || s[i] > '9') return {-1, s};
        n = n * 10 + (s[i] - '0');
    }
    return {n, s.substr(dot + 1)};
}

// A ViT layer's inner names (after "N.") → CLIP's.
std::optional<std::string> vit_layer_name(const std::string & rest, bool midas) {
    if (midas) {
        return rename(rest, {{"norm1.", "layer_norm1."}, {"norm2.", "layer_norm2."}, {"attn.proj.", "self_attn.out_proj."},
                             {"mlp.fc1.", "mlp.fc1."}, {"mlp.fc2.", "mlp.fc2."}});
    }
    return rename(rest, {{"layernorm_before.", "layer_norm1."}, {"layernorm_after.", "layer_norm2."},
                         {"attention.attention.query.", "self_attn.q_proj."}, {"attention.attention.key.", "self_attn.k_proj."},
                         {"attention.attention.value.", "self_attn.v_proj."}, {"attention.output.dense.", "self_attn.out_proj."},
                         {"intermediate.dense.", "mlp.fc1."}, {"output.dense.", "mlp.fc2."}});
}

// transformers' name → canonical; "" for tensors the depth output never reads.
std::optional<std::string> transformers_name(const std::string & n) {
    // transformers 4 and 5 nest the BiT model as "backbone.bit."; accept it flattened as well.
    if (auto b = rename(n, {{"dpt.embeddings.backbone.bit.", ""}, {"dpt.embeddings.backbone.", ""}})) {
        return rename(*b, {{"embedder.convolution.", "backbone.stem.conv."}, {"embedder.norm.", "backbone.stem.norm."},
                           {"encoder.stages.", "backbone.stages."}});
    }
    if (starts_with(n, "dpt.encoder.layer.")) {
        auto [layer, rest] = split_index(n.substr(std::string("dpt.encoder.layer.").size()));
        if (layer < 0) return std::nullopt;
        auto inner = vit_layer_name(rest, false);
        if (!inner) return std::nullopt;
        return "encoder.layers." + std::to_string(layer) + "." + *inner;
    }
    if (starts_with(n, "dpt.layernorm.") || starts_with(n, "dpt.pooler.")) return std::string();
    if (starts_with(n, "dpt.embeddings.")) return "embeddings." + n.substr(std::string("dpt.embeddings.").size());
    if (starts_with(n, "neck.") || starts_with(n, "head.")) return n;
    return std::nullopt;
}

// MiDaS's name (without the checkpoint's prefix) → canonical; "" for tensors never read, "qkv:N.kind"
// for a fused attention projection to split.
std::optional<std::string> midas_name(const std::string & n) {
    if (auto b = rename(n, {{"pretrained.model.patch_embed.backbone.", ""}})) {
        if (auto stem = rename(*b, {{"stem.conv.", "backbone.stem.conv."}, {"stem.norm.", "backbone.stem.norm."}})) return stem;
        if (!starts_with(*b, "stages.")) return std::nullopt;
        auto [stage, rest] = split_index(b->substr(std::string("stages.").size()));
        if (stage < 0 || !starts_with(rest, "blocks.")) return std::nullopt;
        return "backbone.stages." + std::to_string(stage) + ".layers." + rest.substr(std::string("blocks.").size());
    }
    if (n == "pretrained.model.cls_token") return std::string("embeddings.cls_token");
    if (n == "pretrained.model.pos_embed") return std::string("embeddings.position_embeddings");
    if (auto p = rename(n, {{"pretrained.model.patch_embed.proj.", "embeddings.projection."}})) return p;
    if (starts_with(n, "pretrained.model.blocks.")) {
        auto [layer, rest] = split_index(n.substr(std::string("pretrained.model.blocks.").size()));
        if (layer < 0) return std::nullopt;
        if (rest == "attn.qkv.weight" || rest == "attn.qkv.bias") return "qkv:" + std::to_string(layer) + "." + rest.substr(9);
        auto inner = vit_layer_name(rest, true);
        if (!inner) return std::nullopt;
        return "encoder.layers." + std::to_string(layer) + "." + *inner;
    }
    // timm's final norm and ImageNet classifier: MiDaS never runs them.
    if (starts_with(n, "pretrained.model.norm.") || starts_with(n, "pretrained.model.head.")) return std::string();
    if (starts_with(n, "pretrained.act_postprocess")) {
        auto [stage, rest] = split_index(n.substr(std::string("pretrained.act_postprocess").size()));
        if (stage < 1 || stage > 4) return std::nullopt;
        const std::string i = std::to_string(stage - 1);
        return rename(rest, {{"0.project.0.", ("neck.reassemble_stage.readout_projects." + i + ".0.").c_str()},
                             {"3.", ("neck.reassemble_stage.layers." + i + ".projection.").c_str()},
                             {"4.", ("neck.reassemble_stage.layers." + i + ".resize.").c_str()}});
    }
    if (starts_with(n, "scratch.layer")) {
        const std::string rest = n.substr(std::string("scratch.layer").size());
        if (rest.size() < 5 || rest[0] < '1' || rest[0] > '4' || rest.compare(1, 4, "_rn.") != 0) return std::nullopt;
        return "neck.convs." + std::to_string(rest[0] - '1') + "." + rest.substr(5);
    }
    if (starts_with(n, "scratch.refinenet")) {
        auto [k, rest] = split_index(n.substr(std::string("scratch.refinenet").size()));
        if (k < 1 || k > 4) return std::nullopt;
        const std::string layer = "neck.fusion_stage.layers." + std::to_string(4 - k) + ".";
        return rename(rest, {{"out_conv.", (layer + "projection.").c_str()},
                             {"resConfUnit1.conv1.", (layer + "residual_layer1.convolution1.").c_str()},
                             {"resConfUnit1.conv2.", (layer + "residual_layer1.convolution2.").c_str()},
                             {"resConfUnit2.conv1.", (layer + "residual_layer2.convolution1.").c_str()},
                             {"resConfUnit2.conv2.", (layer + "residual_layer2.convolution2.").c_str()}});
    }
    if (auto h = rename(n, {{"scratch.output_conv.", "head.head."}})) return h;
    return std::nullopt;
}

// What a config.json says; unset where it says nothing.
struct DptConfig {
    std::optional<int64_t> hidden, layers, heads, image_size, tap_a, tap_b, groups;
    std::optional<double> layer_norm_eps;
};

DptConfig read_config(const std::string & path) {
    const json::Value root = json::parse_object_file(path, [&](const std::string & why) { not_estimator(path, why); });
    auto integer = [&](const json::Value & object, const char * key, int64_t max) -> std::optional<int64_t> {
        const json::Value * v = object.find(key);
        if (v == nullptr || v->is_null()) return std::nullopt;
        if (!v->is_integer() || v->as_int64() < 1 || v->as_int64() > max) {
            not_estimator(path, std::string(key) + " is not an integer between 1 and " + std::to_string(max));
        }
        return v->as_int64();
    };
    auto text = [&](const json::Value & object, const char * key) -> std::optional<std::string> {
        const json::Value * v = object.find(key);
        if (v == nullptr || v->is_null()) return std::nullopt;
        if (!v->is_string()) not_estimator(path, std::string(key) + " is not a string");
        return v->as_string();
    };
    auto flag = [&](const char * key) {
        const json::Value * v = root.find(key);
        return v != nullptr && v->is_bool() && v->as_bool();
    };
    if (const json::Value * hybrid = root.find("is_hybrid"); hybrid == nullptr || !hybrid->is_bool() || !hybrid->as_bool()) {
        not_estimator(path, "is_hybrid is not true (only DPT-Hybrid, MiDaS 3.0's, is supported)");
    }
    if (auto act = text(root, "hidden_act"); act && *act != "gelu") not_estimator(path, "hidden_act is not 'gelu'");
    if (auto readout = text(root, "readout_type"); readout && *readout != "project") not_estimator(path, "readout_type is not 'project'");
    if (flag("add_projection")) not_estimator(path, "add_projection is not supported");
    if (flag("use_batch_norm_in_fusion_residual")) not_estimator(path, "use_batch_norm_in_fusion_residual is not supported");
    if (const json::Value * factors = root.find("reassemble_factors"); factors != nullptr && !factors->is_null()) {
        const bool hybrid_factors = factors->is_array() && factors->as_array().size() == 4 && factors->as_array()[2].is_number() &&
                                    factors->as_array()[2].as_double() == 1.0 && factors->as_array()[3].is_number() &&
                                    factors->as_array()[3].as_double() == 0.5;
        if (!hybrid_factors) not_estimator(path, "reassemble_factors is not [4, 2, 1, 0.5] (the hybrid's)");
    }
    DptConfig c;
    c.hidden = integer(root, "hidden_size", kMaxWidth);
    c.layers = integer(root, "num_hidden_layers", kMaxLayers);
    c.heads = integer(root, "num_attention_heads", kMaxWidth);
    c.image_size = integer(root, "image_size", kMaxGrid * kPatch);
    if (const json::Value * eps = root.find("layer_norm_eps"); eps != nullptr && !eps->is_null()) {
        if (!eps->is_number() || !(eps->as_double() > 0) || eps->as_double() > 1) not_estimator(path, "layer_norm_eps is not a small positive number");
        c.layer_norm_eps = eps->as_double();
    }
    if (const json::Value * taps = root.find("backbone_out_indices"); taps != nullptr && !taps->is_null()) {
        if (!taps->is_array() || taps->as_array().size() != 4) not_estimator(path, "backbone_out_indices is not a list of 4");
        for (int i = 2; i < 4; ++i) {
            const json::Value & v = taps->as_array()[static_cast<size_t>(i)];
            if (!v.is_integer() || v.as_int64() < 0 || v.as_int64() >= kMaxLayers) not_estimator(path, "backbone_out_indices holds a bad layer index");
        }
        c.tap_a = taps->as_array()[2].as_int64();
        c.tap_b = taps->as_array()[3].as_int64();
    }
    if (const json::Value * backbone = root.find("backbone_config"); backbone != nullptr && backbone->is_object()) {
        c.groups = integer(*backbone, "num_groups", kMaxWidth);
        if (auto type = text(*backbone, "layer_type"); type && *type != "bottleneck") not_estimator(path, "backbone_config.layer_type is not 'bottleneck'");
        if (auto padding = text(*backbone, "global_padding"); padding && *padding != "same" && *padding != "SAME") {
            not_estimator(path, "backbone_config.global_padding is not 'same'");
        }
    }
    return c;
}

struct Shapes {
    std::map<std::string, TensorRecord> by_name;
    const std::string & path;

    bool has(const std::string & name) const { return by_name.count(name) != 0; }
    const TensorRecord & get(const std::string & name) const {
        auto it = by_name.find(name);
        if (it == by_name.end()) not_estimator(path, "no tensor " + name);
        return it->second;
    }
    void expect(const std::string & name, const std::vector<int64_t> & shape) const {
        const TensorRecord & t = get(name);
        if (t.shape != shape) not_estimator(path, name + " has the shape " + shape_text(t.shape) + ", not " + shape_text(shape) + " as the other weights give it");
    }
    // A convolution's (out, in) with a square k×k kernel, checked.
    std::pair<int64_t, int64_t> conv(const std::string & name, int64_t k) const {
        const TensorRecord & t = get(name + ".weight");
        if (t.shape.size() != 4 || t.shape[2] != k || t.shape[3] != k || t.shape[0] < 1 || t.shape[0] > kMaxWidth || t.shape[1] < 1 ||
            t.shape[1] > kMaxWidth) {
            not_estimator(path, name + ".weight is not a " + std::to_string(k) + "×" + std::to_string(k) + " convolution kernel");
        }
        return {t.shape[0], t.shape[1]};
    }
    void conv(const std::string & name, int64_t out, int64_t in, int64_t k, bool bias) const {
        expect(name + ".weight", {out, in, k, k});
        if (bias) expect(name + ".bias", {out});
        else if (has(name + ".bias")) not_estimator(path, name + " has a bias it should not have");
    }
    void norm(const std::string & name, int64_t channels) const {
        expect(name + ".weight", {channels});
        expect(name + ".bias", {channels});
    }
    void linear(const std::string & name, int64_t out, int64_t in) const {
        expect(name + ".weight", {out, in});
        expect(name + ".bias", {out});
    }
};

// Canonical records from the index, for one layout; throws for unknown or non-float tensors.
void collect(const TensorIndex & index, const std::string & path, bool midas, const std::string & prefix, Shapes & s) {
    for (const TensorRecord & t : index.tensors) {
        if (!starts_with(t.name, prefix)) continue;  // the rest of an SD checkpoint
        const std::string source = t.name.substr(prefix.size());
        if (source == "dpt.embeddings.position_ids") continue;
        std::optional<std::string> name = midas ? midas_name(source) : transformers_name(source);
        if (!name) not_estimator(path, "unexpected tensor " + t.name);
        if (name->empty()) continue;
        if (!is_float(t.type)) not_estimator(path, t.name + " is not a float tensor");
        if (starts_with(*name, "qkv:")) {
            // timm's fused [3·hidden(, hidden)] projection: q, k and v are consecutive rows.
            if (t.shape.empty() || t.shape[0] % 3 != 0 || t.shape[0] < 3) not_estimator(path, t.name + " does not split into q, k and v");
            auto [layer, kind] = split_index(name->substr(4));
            const char * parts[] = {"q_proj", "k_proj", "v_proj"};
            const uint64_t part_bytes = t.nbytes / 3;
            for (int i = 0; i < 3; ++i) {
                TensorRecord r = t;
                r.shape[0] /= 3;
                r.offset = t.offset + part_bytes * static_cast<uint64_t>(i);
                r.nbytes = part_bytes;
                r.name = "encoder.layers." + std::to_string(layer) + ".self_attn." + parts[i] + "." + kind;
                if (!s.by_name.emplace(r.name, r).second) not_estimator(path, "two tensors named " + r.name);
            }
            continue;
        }
        TensorRecord r = t;
        r.name = *name;
        if (!s.by_name.emplace(r.name, r).second) not_estimator(path, "two tensors named " + r.name);
    }
}

// Agrees with the config where the config says something.
void agree(int64_t from_weights, const std::optional<int64_t> & from_config, const char * what, const std::string & config_path) {
    if (from_config && *from_config != from_weights) {
        not_estimator(config_path, std::string("its ") + what + " (" + std::to_string(*from_config) + ") disagrees with the weights (" +
                                       std::to_string(from_weights) + ")");
    }
}

// Checks every tensor against the sizes the weights give, fills the sizes.
void check_network(const Shapes & s, const DptConfig & c, const std::string & path, const std::string & config_path,
                   DepthEstimatorFile & f) {
    // Backbone.
    const auto [stem_out, stem_in] = s.conv("backbone.stem.conv", 7);
    if (stem_in != 3) not_estimator(path, "backbone.stem.conv.weight does not take RGB");
    s.conv("backbone.stem.conv", stem_out, 3, 7, false);
    s.norm("backbone.stem.norm", stem_out);
    const int64_t groups = c.groups.value_or(kMidasGroups);
    size_t counted = 3;
    int64_t channels = stem_out;
    std::vector<int64_t> stage_channels;
    for (int64_t stage = 0; stage < kStages; ++stage) {
        const std::string base = "backbone.stages." + std::to_string(stage) + ".layers.";
        int64_t layers = 0;
        while (s.has(base + std::to_string(layers) + ".conv1.weight")) ++layers;
        if (layers < 1 || layers > kMaxLayers) not_estimator(path, "no backbone stage " + std::to_string(stage) + " (" + base + "0.…)");
        for (int64_t l = 0; l < layers; ++l) {
            const std::string layer = base + std::to_string(l);
            const auto [mid, in] = s.conv(layer + ".conv1", 1);
            const int64_t out = s.conv(layer + ".conv3", 1).first;
            s.conv(layer + ".conv1", mid, channels, 1, false);
            s.conv(layer + ".conv2", mid, mid, 3, false);
            s.conv(layer + ".conv3", out, mid, 1, false);
            s.norm(layer + ".norm1", mid);
            s.norm(layer + ".norm2", mid);
            s.norm(layer + ".norm3", out);
            counted += 9;
            if (l == 0) {
                s.conv(layer + ".downsample.conv", out, channels, 1, false);
                s.norm(layer + ".downsample.norm", out);
                counted += 3;
            } else if (s.has(layer + ".downsample.conv.weight")) {
                not_estimator(path, layer + " has a downsampling shortcut only a stage's first layer has");
            } else if (out != channels) {
                not_estimator(path, layer + " changes the width without a shortcut projection");
            }
            for (int64_t width : {mid, out}) {
                if (width % groups != 0) not_estimator(config_path, layer + ": " + std::to_string(width) + " channels do not split into " + std::to_string(groups) + " groups");
            }
            channels = out;
        }
        if (stem_out % groups != 0) not_estimator(config_path, "the stem's channels do not split into " + std::to_string(groups) + " groups");
        stage_channels.push_back(channels);
        f.stage_layers.push_back(layers);
    }
    if (s.has("backbone.stages.3.layers.0.conv1.weight")) not_estimator(path, "its backbone has a fourth stage (DPT-Hybrid's has three)");

    // ViT.
    const TensorRecord & cls = s.get("embeddings.cls_token");
    if (cls.shape.size() != 3 || cls.shape[0] != 1 || cls.shape[1] != 1 || cls.shape[2] < 1 || cls.shape[2] > kMaxWidth) {
        not_estimator(path, "embeddings.cls_token is not [1, 1, hidden]");
    }
    const int64_t hidden = cls.shape[2];
    s.conv("embeddings.projection", hidden, stage_channels.back(), 1, true);
    const TensorRecord & pos = s.get("embeddings.position_embeddings");
    if (pos.shape.size() != 3 || pos.shape[0] != 1 || pos.shape[2] != hidden || pos.shape[1] < 2) {
        not_estimator(path, "embeddings.position_embeddings is not [1, 1 + grid², hidden]");
    }
    if (pos.shape[1] > kMaxGrid * kMaxGrid + 1) not_estimator(path, "more than " + std::to_string(kMaxGrid) + "×" + std::to_string(kMaxGrid) + " patches");
    int64_t grid = 1;
    while ((grid + 1) * (grid + 1) <= pos.shape[1] - 1) ++grid;
    if (grid * grid != pos.shape[1] - 1) not_estimator(path, "embeddings.position_embeddings does not hold a class position and a square grid");
    if (grid > kMaxGrid) not_estimator(path, "more than " + std::to_string(kMaxGrid) + "×" + std::to_string(kMaxGrid) + " patches");
    // The fusion blocks double the reassembled maps and add the next ones: even grids keep their
    // sizes equal (the 3×3/2 reassembly of an odd grid would need an extra resize).
    if (grid % 2 != 0) not_estimator(path, "its position grid (" + std::to_string(grid) + ") is odd");
    counted += 4;
    int64_t layers = 0;
    while (s.has("encoder.layers." + std::to_string(layers) + ".layer_norm1.weight")) ++layers;
    if (layers < 1 || layers > kMaxLayers) not_estimator(path, "no ViT layers");
    const std::vector<int64_t> & fc1 = s.get("encoder.layers.0.mlp.fc1.weight").shape;
    if (fc1.size() != 2 || fc1[0] < 1 || fc1[0] > 4 * kMaxWidth) not_estimator(path, "encoder.layers.0.mlp.fc1.weight has an unexpected shape");
    const int64_t intermediate = fc1[0];
    for (int64_t l = 0; l < layers; ++l) {
        const std::string layer = "encoder.layers." + std::to_string(l);
        for (const char * proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) s.linear(layer + ".self_attn." + proj, hidden, hidden);
        s.norm(layer + ".layer_norm1", hidden);
        s.norm(layer + ".layer_norm2", hidden);
        s.linear(layer + ".mlp.fc1", intermediate, hidden);
        s.linear(layer + ".mlp.fc2", hidden, intermediate);
        counted += 16;
    }
    const int64_t heads = c.heads.value_or(std::max<int64_t>(1, hidden / kHeadWidth));
    if (hidden % heads != 0) not_estimator(config_path, "hidden_size " + std::to_string(hidden) + " is not a multiple of the heads (" + std::to_string(heads) + ")");
    const int64_t tap_a = c.tap_a.value_or((3 * layers) / 4 - 1);
    const int64_t tap_b = c.tap_b.value_or(layers - 1);
    if (tap_a < 0 || tap_b < 0 || tap_a >= layers || tap_b >= layers) not_estimator(config_path, "backbone_out_indices names a layer past the last");

    // Neck.
    std::vector<int64_t> neck = {stage_channels[0], stage_channels[1], 0, 0};
    for (int i = 2; i < 4; ++i) {
        const std::string is = std::to_string(i);
        s.linear("neck.reassemble_stage.readout_projects." + is + ".0", hidden, 2 * hidden);
        neck[static_cast<size_t>(i)] = s.conv("neck.reassemble_stage.layers." + is + ".projection", 1).first;
        s.conv("neck.reassemble_stage.layers." + is + ".projection", neck[static_cast<size_t>(i)], hidden, 1, true);
        counted += 4;
    }
    if (s.has("neck.reassemble_stage.layers.2.resize.weight")) not_estimator(path, "its third reassembly resizes (the hybrid's keeps the size)");
    s.conv("neck.reassemble_stage.layers.3.resize", neck[3], neck[3], 3, true);
    counted += 2;
    const int64_t fusion = s.conv("neck.convs.0", 3).first;
    for (int i = 0; i < 4; ++i) {
        s.conv("neck.convs." + std::to_string(i), fusion, neck[static_cast<size_t>(i)], 3, false);
        const std::string layer = "neck.fusion_stage.layers." + std::to_string(i);
        s.conv(layer + ".projection", fusion, fusion, 1, true);
        for (const char * unit : {".residual_layer1", ".residual_layer2"}) {
            s.conv(layer + unit + ".convolution1", fusion, fusion, 3, true);
            s.conv(layer + unit + ".convolution2", fusion, fusion, 3, true);
        }
        counted += 1 + 2 + 8;
    }

    // Head.
    const int64_t head1 = s.conv("head.head.0", 3).first;
    s.conv("head.head.0", head1, fusion, 3, true);
    const int64_t head2 = s.conv("head.head.2", 3).first;
    s.conv("head.head.2", head2, head1, 3, true);
    s.conv("head.head.4", 1, head2, 1, true);
    counted += 6;
    if (s.by_name.size() != counted) {
        for (const auto & [name, record] : s.by_name) {
            (void)record;
            if (starts_with(name, "encoder.layers.") || starts_with(name, "backbone.stages.")) continue;
            if (!starts_with(name, "head.head.") && !starts_with(name, "neck.") && !starts_with(name, "embeddings.") &&
                !starts_with(name, "backbone.stem.")) {
                not_estimator(path, "unexpected tensor " + name);
            }
        }
        not_estimator(path, "it has tensors beyond the layers counted (" + std::to_string(s.by_name.size()) + " tensors, " +
                                std::to_string(counted) + " expected)");
    }

    agree(hidden, c.hidden, "hidden_size", config_path);
    agree(layers, c.layers, "num_hidden_layers", config_path);
    agree(grid * kPatch, c.image_size, "image_size", config_path);
    f.image_size = grid * kPatch;
    f.grid = grid;
    f.hidden = hidden;
    f.layers = layers;
    f.heads = heads;
    f.fusion = fusion;
    f.groups = groups;
    f.taps[0] = tap_a;
    f.taps[1] = tap_b;
}

// A transformers folder's weight file, or "" when it has none.
fs::path folder_weights(const fs::path & folder) {
    std::error_code ec;
    for (const char * name : {"model.safetensors", "pytorch_model.bin"}) {
        if (fs::is_regular_file(folder / name, ec)) return folder / name;
    }
    return {};
}

} // namespace

DepthEstimatorFile open_depth_estimator(const std::string & path) {
    DepthEstimatorFile file;
    std::error_code ec;
    fs::path weights(path), config;
    if (fs::is_directory(path, ec)) {
        fs::path folder(path);
        if (fs::is_directory(folder / "depth_estimator", ec)) folder /= "depth_estimator";
        weights = folder_weights(folder);
        if (weights.empty()) {
            if (fs::is_regular_file(fs::path(path) / "model_index.json", ec)) no_estimator(path, "the model folder has no depth_estimator/");
            not_estimator(path, "the folder has neither model.safetensors nor pytorch_model.bin (nor a depth_estimator/ folder)");
        }
        config = folder / "config.json";
        if (!fs::is_regular_file(config, ec)) not_estimator(folder.string(), "the folder has no config.json");
    } else if (!fs::exists(path, ec)) {
        throw Error("ERR_FILE_NOT_FOUND", "Depth estimator not found: " + path, path);
    }
    const std::string weights_path = weights.string();
    TensorIndex index;
    try {
        index = read_model_file(weights_path);
    } catch (const Error & e) {
        if (e.code() != "ERR_MODEL_FORMAT") throw;
        throw Error("ERR_DEPTH_ESTIMATOR_FORMAT", std::string("Not a depth estimator file: ") + e.what(), weights_path);
    }

    // The layout, from the names.
    bool transformers = false, midas_ldm = false, midas = false;
    for (const TensorRecord & t : index.tensors) {
        if (starts_with(t.name, "dpt.") || starts_with(t.name, "neck.") || starts_with(t.name, "head.head.")) transformers = true;
        else if (starts_with(t.name, kLdmPrefix)) midas_ldm = true;
        else if (starts_with(t.name, "pretrained.model.") || starts_with(t.name, "scratch.")) midas = true;
    }
    const std::string prefix = midas_ldm ? kLdmPrefix : "";
    const bool is_midas = !transformers && (midas_ldm || midas);
    if (!transformers && !is_midas) no_estimator(weights_path, "it holds no DPT weights (no dpt.…, depth_model.… or MiDaS names)");
    const char * vit_marker = transformers ? "dpt.embeddings.cls_token" : "pretrained.model.cls_token";
    if (index.find(prefix + vit_marker) == nullptr) {
        no_estimator(weights_path, std::string("it has no ") + prefix + vit_marker + " (the estimator's transformer is missing)");
    }
    if (!is_midas && config.empty() && fs::is_regular_file(fs::path(weights_path).parent_path() / "config.json", ec)) {
        config = fs::path(weights_path).parent_path() / "config.json";
    }
    DptConfig c;
    if (!config.empty()) {
        c = read_config(config.string());
        file.files.push_back(config.string());
    }
    file.files.push_back(weights_path);
    file.layout = is_midas ? "midas" : "transformers";

    Shapes s{{}, weights_path};
    collect(index, weights_path, is_midas, prefix, s);
    check_network(s, c, weights_path, config.empty() ? weights_path : config.string(), file);
    file.layer_norm_eps = c.layer_norm_eps ? static_cast<float>(*c.layer_norm_eps)
                                           : (is_midas ? kMidasLayerNormEps : kTransformersLayerNormEps);
    for (auto & [name, record] : s.by_name) file.tensors.push_back(std::move(record));
    return file;
}

} // namespace sd
