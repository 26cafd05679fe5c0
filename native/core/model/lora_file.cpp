#include "model/lora_file.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "io/json.h"
#include "io/model_file_reader.h"
#include "io/string_util.h"
#include "model/name_mapping.h"
#include "sdcore/error.h"

namespace sd {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void format_error(const std::string & path, const std::string & message) {
    throw Error("ERR_LORA_FORMAT", message, path);
}

[[noreturn]] void incompatible(const std::string & path, const std::string & message) {
    throw Error("ERR_LORA_INCOMPATIBLE", message, path);
}

std::string file_name(const std::string & path) { return fs::path(path).filename().string(); }

std::string underscored(std::string text) {
    std::replace(text.begin(), text.end(), '.', '_');
    return text;
}

// A weight a LoRA can change: a linear or convolution weight of the text encoder or the UNet.
struct Target {
    std::string canonical;  // "unet.….weight"
    Network network = Network::unet;
    std::vector<int64_t> shape;  // outermost first
};

// The model's LoRA targets under every name a file may give their module.
class TargetTable {
public:
    TargetTable(const ModelConfig & config, const std::vector<LoraWeight> & weights) {
        for (const LoraWeight & weight : weights) add(weight, config);
        for (const std::string & name : ambiguous_) by_kohya_.erase(name);
    }

    const Target * kohya(const std::string & module) const {
        auto it = by_kohya_.find(module);
        return it == by_kohya_.end() ? nullptr : &it->second;
    }
    // A dotted module path with its network prefix ("unet.down_blocks.0.….to_q").
    const Target * module(const std::string & path) const {
        auto it = by_module_.find(path);
        return it == by_module_.end() ? nullptr : &it->second;
    }

private:
    void add_alias(const std::string & alias, const Target & target) {
        auto [it, inserted] = by_kohya_.emplace(alias, target);
        if (!inserted && it->second.canonical != target.canonical) ambiguous_.insert(alias);
    }

    // Linear and convolution weights of the text encoder and the UNet (not the token and position
    // embeddings); anything else is no target.
    void add(const LoraWeight & weight, const ModelConfig & config) {
        const bool text = starts_with(weight.name, "text_encoder.");
        if (!text && !starts_with(weight.name, "unet.")) return;
        const std::string prefix = text ? "text_encoder." : "unet.";
        const std::string name = weight.name.substr(prefix.size());
        if (!ends_with(name, ".weight") || starts_with(name, "embeddings.")) return;
        if (weight.shape.size() != 2 && weight.shape.size() != 4) return;
        Target target;
        target.canonical = weight.name;
        target.network = text ? Network::text_encoder : Network::unet;
        target.shape = weight.shape;
        const std::string module = name.substr(0, name.size() - 7);
        by_module_[prefix + module] = target;
        if (text) {
            add_alias("lora_te_text_model_" + underscored(module), target);
            add_alias("lora_te_" + underscored(module), target);
        } else {
            add_alias("lora_unet_" + underscored(module), target);
            // LDM module names, as some trainers and converters write them ("input_blocks_1_1_proj_in").
            const std::string ldm = ldm_original_name(target.canonical, config.unet.layers_per_block,
                                                      config.unet.cross_attention, 0, false);
            const std::string head = "model.diffusion_model.";
            if (starts_with(ldm, head) && ends_with(ldm, ".weight")) {
                add_alias("lora_unet_" + underscored(ldm.substr(head.size(), ldm.size() - head.size() - 7)), target);
            }
        }
    }

    std::unordered_map<std::string, Target> by_kohya_;
    std::unordered_map<std::string, Target> by_module_;
    std::set<std::string> ambiguous_;
};

// What a key of a LoRA file is: the module it belongs to and which part of it.
struct KeyPart {
    enum class Style { kohya, peft, diffusers } style = Style::kohya;
    std::string module;  // kohya: "lora_unet_…"; others: dotted with the network prefix
    std::string part;    // "down", "up", "alpha", "hada_w1_a", "lokr_w1", … or what kohya files add
};

// Parts a module may have, by family.
const std::set<std::string> & lycoris_parts() {
    static const std::set<std::string> parts = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
                                                "lokr_w1",   "lokr_w1_a", "lokr_w1_b", "lokr_w2",   "lokr_w2_a", "lokr_w2_b",
                                                "lokr_t2"};
    return parts;
}

// Dotted module paths (PEFT, diffusers) in canonical form: the network prefix, diffusers' module
// path below it (the text encoder's without transformers' "text_model."). Empty when the path
// belongs to no network of SD 1.x/2.x; `sdxl` is set for SDXL's second text encoder.
std::string canonical_module(std::string path, bool & sdxl) {
    for (const char * wrapper : {"base_model.model.", "model."}) {
        if (starts_with(path, wrapper)) path = path.substr(std::string(wrapper).size());
    }
    if (starts_with(path, "text_encoder_2.")) {
        sdxl = true;
        return "";
    }
    std::string prefix;
    if (starts_with(path, "unet.")) {
        prefix = "unet.";
        path = path.substr(5);
    } else if (starts_with(path, "text_encoder.")) {
        prefix = "text_encoder.";
        path = path.substr(13);
    } else {
        prefix = starts_with(path, "text_model.") || starts_with(path, "encoder.layers.") ? "text_encoder." : "unet.";
    }
    if (prefix == "text_encoder." && starts_with(path, "text_model.")) path = path.substr(11);
    // diffusers' attention processors: "attn1.processor.to_q_lora" is attn1.to_q, "to_out_lora" to_out.0.
    const std::string processor = ".processor.";
    const size_t at = path.find(processor);
    if (at != std::string::npos && ends_with(path, "_lora")) {
        std::string layer = path.substr(at + processor.size());
        layer = layer.substr(0, layer.size() - 5);
        if (layer == "to_out") layer = "to_out.0";
        path = path.substr(0, at) + "." + layer;
    }
    return prefix + path;
}

bool parse_key(const std::string & key, KeyPart & out) {
    if (starts_with(key, "lora_unet_") || starts_with(key, "lora_te_") || starts_with(key, "lora_te1_") ||
        starts_with(key, "lora_te2_")) {
        const size_t dot = key.find('.');
        if (dot == std::string::npos) return false;
        out.style = KeyPart::Style::kohya;
        out.module = key.substr(0, dot);
        out.part = key.substr(dot + 1);
        if (out.part == "lora_down.weight") out.part = "down";
        else if (out.part == "lora_up.weight") out.part = "up";
        return true;
    }
    static const std::pair<const char *, const char *> dotted[] = {
        {".lora_A.weight", "down"},
        {".lora_B.weight", "up"},
        {".lora_linear_layer.down.weight", "down"},
        {".lora_linear_layer.up.weight", "up"},
        {".lora.down.weight", "down"},
        {".lora.up.weight", "up"},
        {".down.weight", "down"},  // attention processors: "….to_q_lora.down.weight"
        {".up.weight", "up"},
        {".alpha", "alpha"},
    };
    for (const auto & [suffix, part] : dotted) {
        if (!ends_with(key, suffix)) continue;
        const std::string module = key.substr(0, key.size() - std::string(suffix).size());
        const std::string s = suffix;
        if ((s == ".down.weight" || s == ".up.weight") && !ends_with(module, "_lora")) return false;
        out.style = s == ".lora_A.weight" || s == ".lora_B.weight" || s == ".alpha" ? KeyPart::Style::peft : KeyPart::Style::diffusers;
        out.module = module;
        out.part = part;
        return true;
    }
    return false;
}

// PEFT's LoraConfig for one network, from the safetensors metadata diffusers writes
// ("lora_adapter_metadata": {"unet.r": 4, "unet.lora_alpha": 8, "unet.alpha_pattern": {…}, …}).
struct PeftConfig {
    bool present = false;
    double alpha = 0;
    bool rslora = false;
    std::vector<std::pair<std::string, double>> alpha_pattern;
};

PeftConfig peft_config(const std::map<std::string, std::string> & metadata, const std::string & network, const std::string & path) {
    PeftConfig config;
    auto it = metadata.find("lora_adapter_metadata");
    if (it == metadata.end()) return config;
    json::Value root;
    try {
        root = json::parse(it->second);
    } catch (const json::ParseError & e) {
        format_error(path, file_name(path) + " has unreadable lora_adapter_metadata: " + e.what());
    }
    if (!root.is_object()) return config;
    const json::Value * alpha = root.find(network + ".lora_alpha");
    if (alpha != nullptr && alpha->is_number()) {
        config.present = true;
        config.alpha = alpha->as_double();
    }
    const json::Value * rslora = root.find(network + ".use_rslora");
    if (rslora != nullptr && rslora->is_bool()) config.rslora = rslora->as_bool();
    const json::Value * pattern = root.find(network + ".alpha_pattern");
    if (pattern != nullptr && pattern->is_object()) {
        for (const auto & [name, value] : pattern->as_object()) {
            if (value.is_number()) config.alpha_pattern.emplace_back(name, value.as_double());
        }
    }
    return config;
}

struct ModuleParts {
    KeyPart::Style style = KeyPart::Style::kohya;
    std::map<std::string, const TensorRecord *> parts;
    std::vector<std::string> keys;
};

HostTensor read_f32(const TensorRecord & record, const std::string & path) {
    if (record.element_count() < 0) format_error(path, file_name(path) + ": tensor " + record.name + " has an invalid size");
    HostTensor t(record.shape);
    if (t.shape.empty()) t.shape = {1};
    t.data.resize(static_cast<size_t>(record.element_count()));
    try {
        read_tensor_f32(record, t.data.data());
    } catch (const Error & e) {
        format_error(path, file_name(path) + ": " + e.what());
    }
    return t;
}

// A factor as a matrix: its first dimension by the product of the others.
HostTensor as_matrix(HostTensor t) {
    if (t.shape.size() == 1) t.shape = {1, t.shape[0]};
    int64_t cols = 1;
    for (size_t i = 1; i < t.shape.size(); ++i) cols *= t.shape[i];
    t.shape = {t.shape[0], cols};
    return t;
}

// The weight's input columns (in · kh · kw) and input channels.
int64_t target_columns(const Target & target) {
    int64_t cols = 1;
    for (size_t i = 1; i < target.shape.size(); ++i) cols *= target.shape[i];
    return cols;
}

int64_t kernel_size(const std::vector<int64_t> & shape) { return shape.size() == 4 ? shape[2] * shape[3] : 1; }

// Which SD family a LoRA was made for, from a shape that only fits one: the cross-attention
// context width (attn2.to_k's input) or the text encoder's width.
std::string family_hint(const std::string & target, const std::vector<int64_t> & lora_in_shape, const ModelConfig & config) {
    if (lora_in_shape.size() < 2) return "";
    const int64_t width = lora_in_shape[1];
    const bool context = ends_with(target, "attn2.to_k.weight") || ends_with(target, "attn2.to_v.weight");
    const bool text = starts_with(target, "text_encoder.");
    if (!context && !text) return "";
    const int64_t ours = config.unet.context_dim;
    if (width == ours) return "";
    const char * family = width == 768 ? "SD 1.x" : width == 1024 ? "SD 2.x" : width == 2048 || width == 1280 ? "SDXL" : nullptr;
    if (family == nullptr) return "";
    return std::string(" It was made for ") + family + " models (" + (context ? "context" : "text") + " width " +
           std::to_string(width) + "); this model is " + family_name(config.family) + " (" + std::to_string(ours) + ").";
}

float alpha_value(const TensorRecord & record, const std::string & path) {
    HostTensor a = read_f32(record, path);
    if (a.data.size() != 1 || !std::isfinite(a.data[0])) {
        format_error(path, file_name(path) + ": " + record.name + " is not a finite scalar");
    }
    return a.data[0];
}

} // namespace

void lora_file_identity(const std::string & path, uint64_t & size, int64_t & modified) {
    std::error_code ec;
    const fs::path p(path);
    if (!fs::is_regular_file(p, ec)) {
        if (fs::exists(p, ec)) throw Error("ERR_FILE_READ", path + " is not a file", path);
        throw Error("ERR_FILE_NOT_FOUND", path + " does not exist", path);
    }
    size = fs::file_size(p, ec);
    if (ec) throw Error("ERR_FILE_READ", "Cannot read " + path + ": " + ec.message(), path);
    modified = static_cast<int64_t>(fs::last_write_time(p, ec).time_since_epoch().count());
}

LoraFile read_lora_file(const std::string & path, const ModelConfig & config, const std::vector<LoraWeight> & weights) {
    uint64_t size = 0;
    int64_t modified = 0;
    lora_file_identity(path, size, modified);
    TensorIndex index;
    try {
        index = read_model_file(path);
    } catch (const Error & e) {
        if (e.code() != "ERR_MODEL_FORMAT") throw;
        format_error(path, file_name(path) + " is not a LoRA file that can be read: " + e.what());
    }
    LoraFile file = map_lora_tensors(index, config, weights);
    file.size = size;
    file.modified = modified;
    return file;
}

LoraFile map_lora_tensors(const TensorIndex & index, const ModelConfig & config, const std::vector<LoraWeight> & weights) {
    const std::string & path = index.path;
    LoraFile file;
    file.path = path;
    if (index.format == FileFormat::gguf) format_error(path, file_name(path) + " is a GGUF file; LoRAs are read from .safetensors and PyTorch files");

    const TargetTable targets(config, weights);
    std::map<std::string, ModuleParts> modules;  // by module name as in the file, sorted
    std::vector<std::string> unknown;
    bool sdxl = false, any_lora_key = false;
    for (const TensorRecord & record : index.tensors) {
        KeyPart key;
        if (!parse_key(record.name, key)) {
            unknown.push_back(record.name);
            continue;
        }
        any_lora_key = true;
        ModuleParts & m = modules[key.module];
        m.style = key.style;
        m.parts[key.part] = &record;
        m.keys.push_back(record.name);
    }
    if (!any_lora_key) {
        format_error(path, file_name(path) + " holds no LoRA tensors (no lora_unet_/lora_te_ keys, no lora_A/lora_B, " +
                               "no LyCORIS hada_/lokr_ parts): it is not a LoRA");
    }

    std::map<std::string, PeftConfig> peft;  // by network prefix
    peft["unet"] = peft_config(index.metadata, "unet", path);
    peft["text_encoder"] = peft_config(index.metadata, "text_encoder", path);

    bool kohya = false, peft_seen = false, diffusers = false, loha = false, lokr = false;
    std::vector<std::string> mismatches;
    std::string hint;
    for (auto & module_entry : modules) {
        // Named references, not a structured binding: the lambdas below capture them (C++17).
        const std::string & name = module_entry.first;
        ModuleParts & m = module_entry.second;
        auto skip = [&] { unknown.insert(unknown.end(), m.keys.begin(), m.keys.end()); };
        const Target * target = nullptr;
        std::string dotted;
        if (m.style == KeyPart::Style::kohya) {
            if (starts_with(name, "lora_te1_") || starts_with(name, "lora_te2_")) sdxl = true;
            target = targets.kohya(name);
        } else {
            dotted = canonical_module(name, sdxl);
            if (!dotted.empty()) target = targets.module(dotted);
        }
        if (target == nullptr) {
            skip();
            continue;
        }
        auto part = [&](const char * p) -> const TensorRecord * {
            auto it = m.parts.find(p);
            return it == m.parts.end() ? nullptr : it->second;
        };
        // Parts that would make the change something else than what we compute: leave the module out.
        bool unsupported = false;
        for (const auto & [p, record] : m.parts) {
            (void)record;
            if (p != "down" && p != "up" && p != "alpha" && !lycoris_parts().count(p)) unsupported = true;
        }
        if (part("hada_t1") || part("hada_t2") || part("lokr_t2")) unsupported = true;
        if (unsupported) {
            skip();
            continue;
        }

        LoraModule module;
        module.key = name;
        module.target = target->canonical;
        module.network = target->network;
        module.target_shape = target->shape;
        module.in_channels = target->shape[1];
        const int64_t out = target->shape[0];
        const int64_t cols = target_columns(*target);
        const int64_t kernel = kernel_size(target->shape);
        std::optional<float> alpha;
        if (const TensorRecord * a = part("alpha")) alpha = alpha_value(*a, path);
        std::string problem;

        if (part("down") || part("up")) {
            const TensorRecord * down_r = part("down");
            const TensorRecord * up_r = part("up");
            if (down_r == nullptr || up_r == nullptr) {
                format_error(path, file_name(path) + ": module " + name + " has " + (down_r ? "a down" : "an up") +
                                       " matrix but no " + (down_r ? "up" : "down") + " matrix");
            }
            module.kind = LoraKind::lora;
            if (m.style == KeyPart::Style::kohya) kohya = true;
            else if (m.style == KeyPart::Style::peft) peft_seen = true;
            else diffusers = true;
            const std::vector<int64_t> down_shape = down_r->shape, up_shape = up_r->shape;
            const bool down_ok = down_shape.size() == 2 || down_shape.size() == 4;
            const bool up_ok = up_shape.size() == 2 || (up_shape.size() == 4 && up_shape[2] == 1 && up_shape[3] == 1);
            if (!down_ok || !up_ok || up_shape[1] != down_shape[0]) {
                format_error(path, file_name(path) + ": module " + name + " has down " + shape_text(down_shape) + " and up " +
                                       shape_text(up_shape) + ", which do not make a low-rank product");
            }
            module.rank = down_shape[0];
            const int64_t lora_kernel = kernel_size(down_shape);
            const int64_t lora_in = down_shape[1];
            const bool conv_in_pad = target->canonical == "unet.conv_in.weight" && lora_in < module.in_channels;
            if (up_shape[0] != out || lora_kernel != kernel || (lora_in != module.in_channels && !conv_in_pad) ||
                (down_shape.size() == 4 && target->shape.size() == 4 && (down_shape[2] != target->shape[2] || down_shape[3] != target->shape[3]))) {
                problem = name + " changes " + shape_text({up_shape[0], down_shape.size() == 4 ? down_shape[1] : lora_in}) +
                          (down_shape.size() == 4 ? " with a " + std::to_string(down_shape[2]) + "×" + std::to_string(down_shape[3]) + " kernel" : "") +
                          " but " + target->canonical + " is " + shape_text(target->shape);
                if (hint.empty()) hint = family_hint(target->canonical, down_shape, config);
            } else {
                module.in_channels = lora_in;
                module.factors.push_back(as_matrix(read_f32(*down_r, path)));
                module.factors.push_back(as_matrix(read_f32(*up_r, path)));
            }
            if (m.style != KeyPart::Style::kohya && !alpha) {
                const std::string network = module.network == Network::unet ? "unet" : "text_encoder";
                const PeftConfig & config = peft[network];
                const std::string inner = dotted.substr(network.size() + 1);
                std::optional<double> from_config;
                for (const auto & [pattern, value] : config.alpha_pattern) {
                    if (inner == pattern || ends_with(inner, "." + pattern)) from_config = value;
                }
                if (!from_config && config.present) from_config = config.alpha;
                if (from_config) {
                    const double r = static_cast<double>(module.rank);
                    alpha = static_cast<float>(config.rslora ? *from_config * r / std::sqrt(r) : *from_config);
                }
            }
            module.scale = alpha ? *alpha / static_cast<float>(module.rank) : 1.0f;
        } else if (part("hada_w1_a") || part("hada_w1_b") || part("hada_w2_a") || part("hada_w2_b")) {
            const TensorRecord * r[4] = {part("hada_w1_a"), part("hada_w1_b"), part("hada_w2_a"), part("hada_w2_b")};
            if (!r[0] || !r[1] || !r[2] || !r[3]) {
                format_error(path, file_name(path) + ": LoHa module " + name + " lacks one of hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b");
            }
            module.kind = LoraKind::loha;
            loha = true;
            for (const TensorRecord * t : r) module.factors.push_back(as_matrix(read_f32(*t, path)));
            const HostTensor &w1a = module.factors[0], &w1b = module.factors[1], &w2a = module.factors[2], &w2b = module.factors[3];
            if (w1a.shape[1] != w1b.shape[0] || w2a.shape[1] != w2b.shape[0] || w1a.shape[0] != w2a.shape[0] ||
                w1b.shape[1] != w2b.shape[1]) {
                format_error(path, file_name(path) + ": LoHa module " + name + " has factors whose shapes do not multiply");
            }
            module.rank = w1b.shape[0];
            if (w1a.shape[0] != out || w1b.shape[1] != cols) {
                problem = name + " changes " + shape_text({w1a.shape[0], w1b.shape[1]}) + " values but " + target->canonical + " is " +
                          shape_text(target->shape);
                module.factors.clear();
            }
            module.scale = alpha ? *alpha / static_cast<float>(module.rank) : 1.0f;
        } else if (part("lokr_w1") || part("lokr_w1_a") || part("lokr_w2") || part("lokr_w2_a") || part("lokr_w1_b") || part("lokr_w2_b")) {
            module.kind = LoraKind::lokr;
            lokr = true;
            int64_t dim = 0;
            auto factor = [&](const char * whole, const char * a, const char * b) -> HostTensor {
                if (const TensorRecord * w = part(whole)) return as_matrix(read_f32(*w, path));
                const TensorRecord * ra = part(a);
                const TensorRecord * rb = part(b);
                if (!ra || !rb) format_error(path, file_name(path) + ": LoKr module " + name + " lacks " + whole + " (or " + a + " and " + b + ")");
                HostTensor fa = as_matrix(read_f32(*ra, path)), fb = as_matrix(read_f32(*rb, path));
                if (fa.shape[1] != fb.shape[0]) format_error(path, file_name(path) + ": LoKr module " + name + " has " + a + " and " + b + " that do not multiply");
                dim = fb.shape[0];
                HostTensor product({fa.shape[0], fb.shape[1]});
                add_matmul(product.data.data(), fa.data.data(), fb.data.data(), fa.shape[0], fb.shape[1], fa.shape[1], 1.0f);
                return product;
            };
            module.factors.push_back(factor("lokr_w1", "lokr_w1_a", "lokr_w1_b"));
            module.factors.push_back(factor("lokr_w2", "lokr_w2_a", "lokr_w2_b"));
            const HostTensor &w1 = module.factors[0], &w2 = module.factors[1];
            module.rank = dim;
            if (w1.shape[0] * w2.shape[0] != out || w1.shape[1] * w2.shape[1] != cols) {
                problem = name + " changes " + shape_text({w1.shape[0] * w2.shape[0], w1.shape[1] * w2.shape[1]}) + " values but " +
                          target->canonical + " is " + shape_text(target->shape);
                module.factors.clear();
            }
            module.scale = alpha && dim > 0 ? *alpha / static_cast<float>(dim) : 1.0f;
        } else {
            skip();  // an alpha alone, or parts of a kind we do not apply
            continue;
        }
        if (!problem.empty()) {
            mismatches.push_back(problem);
            continue;
        }
        if (!std::isfinite(module.scale)) format_error(path, file_name(path) + ": module " + name + " has a scale that is not finite");
        if (module.network == Network::text_encoder) ++file.text_encoder_layers;
        else ++file.unet_layers;
        file.modules.push_back(std::move(module));
    }

    if (sdxl) {
        incompatible(path, file_name(path) + " is a LoRA for SDXL (it changes a second text encoder); this model is " +
                               family_name(config.family) + ".");
    }
    if (!mismatches.empty()) {
        std::string list;
        for (size_t i = 0; i < mismatches.size() && i < 3; ++i) list += (i ? "; " : "") + mismatches[i];
        if (mismatches.size() > 3) list += "; and " + std::to_string(mismatches.size() - 3) + " more";
        incompatible(path, file_name(path) + " does not fit this model: " + list + "." + hint);
    }
    if (file.modules.empty()) {
        incompatible(path, file_name(path) + " changes no layer of this model: none of its " + std::to_string(modules.size()) +
                               " modules (e.g. " + modules.begin()->first + ") names a text-encoder or UNet weight of it.");
    }
    std::sort(unknown.begin(), unknown.end());
    file.unmatched = std::move(unknown);
    std::string format = kohya ? "kohya" : peft_seen ? "peft" : diffusers ? "diffusers" : "";
    if (loha) format += format.empty() ? "loha" : "+loha";
    if (lokr) format += format.empty() ? "lokr" : "+lokr";
    file.format = format;
    return file;
}

void add_matmul(float * c, const float * a, const float * b, int64_t rows, int64_t cols, int64_t depth, float alpha, int threads) {
    auto work = [=](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            float * crow = c + i * cols;
            for (int64_t p = 0; p < depth; ++p) {
                const float s = alpha * a[i * depth + p];
                if (s == 0.0f) continue;
                const float * brow = b + p * cols;
                for (int64_t j = 0; j < cols; ++j) crow[j] += s * brow[j];
            }
        }
    };
    const int64_t n = std::max<int64_t>(1, std::min<int64_t>(threads, rows));
    if (n == 1 || rows * cols * depth < (1 << 20)) {
        work(0, rows);
        return;
    }
    std::vector<std::thread> pool;
    const int64_t step = (rows + n - 1) / n;
    for (int64_t t = 1; t < n; ++t) {
        const int64_t r0 = t * step, r1 = std::min(rows, r0 + step);
        if (r0 < r1) pool.emplace_back(work, r0, r1);
    }
    work(0, std::min(rows, step));
    for (std::thread & th : pool) th.join();
}

std::vector<float> lora_delta(const LoraModule & m, int threads) {
    const int64_t out = m.target_shape[0];
    int64_t cols = 1;
    for (size_t i = 1; i < m.target_shape.size(); ++i) cols *= m.target_shape[i];
    const int64_t kernel = kernel_size(m.target_shape);
    const int64_t lora_cols = m.in_channels * kernel;  // the module's own columns
    std::vector<float> delta(static_cast<size_t>(lora_cols * out), 0.0f);
    switch (m.kind) {
        case LoraKind::lora: {
            const HostTensor &down = m.factors[0], &up = m.factors[1];
            add_matmul(delta.data(), up.data.data(), down.data.data(), out, lora_cols, m.rank, m.scale, threads);
            break;
        }
        case LoraKind::loha: {
            std::vector<float> second(delta.size(), 0.0f);
            const HostTensor &w1a = m.factors[0], &w1b = m.factors[1], &w2a = m.factors[2], &w2b = m.factors[3];
            add_matmul(delta.data(), w1a.data.data(), w1b.data.data(), out, lora_cols, w1a.shape[1], 1.0f, threads);
            add_matmul(second.data(), w2a.data.data(), w2b.data.data(), out, lora_cols, w2a.shape[1], 1.0f, threads);
            for (size_t i = 0; i < delta.size(); ++i) delta[i] = delta[i] * second[i] * m.scale;
            break;
        }
        case LoraKind::lokr: {
            const HostTensor &w1 = m.factors[0], &w2 = m.factors[1];
            const int64_t a = w1.shape[0], b = w1.shape[1], c = w2.shape[0], d = w2.shape[1];
            for (int64_t i = 0; i < a; ++i) {
                for (int64_t j = 0; j < c; ++j) {
                    float * row = delta.data() + (i * c + j) * lora_cols;
                    for (int64_t p = 0; p < b; ++p) {
                        const float s = m.scale * w1.data[static_cast<size_t>(i * b + p)];
                        const float * w2row = w2.data.data() + j * d;
                        for (int64_t q = 0; q < d; ++q) row[p * d + q] = s * w2row[q];
                    }
                }
            }
            break;
        }
    }
    if (lora_cols == cols) return delta;
    // conv_in of an inpainting or depth UNet: the module's input channels come first, the rest stay 0.
    std::vector<float> padded(static_cast<size_t>(out * cols), 0.0f);
    for (int64_t o = 0; o < out; ++o) {
        std::copy(delta.begin() + o * lora_cols, delta.begin() + (o + 1) * lora_cols, padded.begin() + o * cols);
    }
    return padded;
}

} // namespace sd
