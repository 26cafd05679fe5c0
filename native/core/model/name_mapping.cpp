#include "model/name_mapping.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "io/model_file_reader.h"
#include "io/string_util.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

const char * layout_name(ModelLayout layout) {
    switch (layout) {
        case ModelLayout::diffusers: return "diffusers";
        case ModelLayout::ldm: return "ldm";
        case ModelLayout::canonical: return "canonical";
    }
    return "unknown";
}

const TensorRecord * CanonicalModel::find(const std::string & name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &tensors[it->second];
}

std::string CanonicalModel::file_of(const std::string & name) const {
    const TensorRecord * record = find(name);
    return record && record->file ? record->file->path() : path;
}

namespace {

namespace fs = std::filesystem;

// Reads "<digits>." at `pos`: sets `value` and moves `pos` past the dot.
bool read_index(const std::string & s, size_t & pos, int & value) {
    size_t p = pos;
    int v = 0;
    if (p >= s.size() || s[p] < '0' || s[p] > '9') return false;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
        v = v * 10 + (s[p] - '0');
        if (v > 1000000) return false;
        ++p;
    }
    if (p >= s.size() || s[p] != '.') return false;
    pos = p + 1;
    value = v;
    return true;
}

using Renames = std::initializer_list<std::pair<const char *, const char *>>;

// Replaces the first matching prefix of `s`.
std::optional<std::string> rename_prefix(const std::string & s, Renames renames) {
    for (const auto & [from, to] : renames) {
        if (starts_with(s, from)) return to + s.substr(std::strlen(from));
    }
    return std::nullopt;
}

std::optional<std::string> unet_resnet(const std::string & rest) {
    return rename_prefix(rest, {{"in_layers.0.", "norm1."},
                                {"in_layers.2.", "conv1."},
                                {"emb_layers.1.", "time_emb_proj."},
                                {"out_layers.0.", "norm2."},
                                {"out_layers.3.", "conv2."},
                                {"skip_connection.", "conv_shortcut."}});
}

std::string vae_resnet(const std::string & rest) {
    return starts_with(rest, "nin_shortcut.") ? "conv_shortcut." + rest.substr(13) : rest;
}

// Diffusers-style VAE names (as in a diffusers VAE file): taken as they are.
bool is_diffusers_vae_name(const std::string & name) {
    return starts_with(name, "encoder.") || starts_with(name, "decoder.") || starts_with(name, "quant_conv.") ||
           starts_with(name, "post_quant_conv.");
}

[[noreturn]] void format_error(const std::string & path, const std::string & message) {
    throw Error("ERR_MODEL_FORMAT", message, path);
}

std::string first_names(const std::vector<std::string> & names, size_t n) {
    std::string out;
    for (size_t i = 0; i < names.size() && i < n; ++i) out += (i ? ", " : "") + names[i];
    if (names.size() > n) out += ", … (" + std::to_string(names.size()) + " in all)";
    return out;
}

// Collects canonical tensors, refusing duplicates and turning LDM's differently shaped tensors
// into views of the same bytes.
class Builder {
public:
    explicit Builder(CanonicalModel & model) : model_(model) {}

    void add(const std::string & canonical, const TensorRecord & source) {
        if (ends_with(canonical, ".self_attn.in_proj.weight") || ends_with(canonical, ".self_attn.in_proj.bias")) {
            split_qkv(canonical, source);
            return;
        }
        TensorRecord record = source;
        record.name = canonical;
        if (is_vae_attention_weight(canonical)) squeeze_conv(record, source);
        insert(std::move(record), source.name);
    }

    void ignore(const std::string & name) { model_.ignored.push_back(name); }

private:
    void insert(TensorRecord record, const std::string & source_name) {
        auto it = model_.by_name.find(record.name);
        if (it != model_.by_name.end()) {
            const std::string & other = model_.source_names[it->second];
            format_error(record.file->path(), "Invalid model " + model_.path + ": \"" + source_name + "\" and \"" + other +
                                                  "\" are both " + record.name);
        }
        model_.by_name.emplace(record.name, model_.tensors.size());
        model_.source_names.push_back(source_name);
        model_.tensors.push_back(std::move(record));
    }

    static bool is_vae_attention_weight(const std::string & name) {
        if (!starts_with(name, "vae.") || name.find(".mid_block.attentions.") == std::string::npos) return false;
        return ends_with(name, ".to_q.weight") || ends_with(name, ".to_k.weight") || ends_with(name, ".to_v.weight") ||
               ends_with(name, ".to_out.0.weight");
    }

    // LDM's VAE attention projections are 1x1 convolutions [C, C, 1, 1]; diffusers' are linear
    // [C, C]: the same numbers in the same order.
    static void squeeze_conv(TensorRecord & record, const TensorRecord & source) {
        auto & shape = record.shape;
        while (shape.size() > 2 && shape.back() == 1) shape.pop_back();
        if (shape.size() != 2) {
            format_error(source.file->path(), "Invalid model " + source.file->path() + ": \"" + source.name +
                                                  "\" has shape " + shape_text(source.shape) +
                                                  ", not a 1x1 convolution or linear weight");
        }
    }

    // OpenCLIP keeps q, k and v in one [3H, H] matrix (and one [3H] bias); CLIP has three. The
    // thirds are contiguous row ranges, so each is a view at its own offset.
    void split_qkv(const std::string & canonical, const TensorRecord & source) {
        const bool weight = ends_with(canonical, ".weight");
        const std::string base = canonical.substr(0, canonical.size() - std::strlen(weight ? "in_proj.weight" : "in_proj.bias"));
        const auto & shape = source.shape;
        const bool ok_shape = weight ? shape.size() == 2 : shape.size() == 1;
        if (!ok_shape || shape[0] <= 0 || shape[0] % 3 != 0) {
            format_error(source.file->path(), "Invalid model " + source.file->path() + ": \"" + source.name +
                                                  "\" has shape " + shape_text(shape) + ", expected " +
                                                  (weight ? "[3H, H]" : "[3H]"));
        }
        const int64_t rows = shape[0] / 3;
        const int64_t block = ggml_blck_size(source.type);
        const int64_t row_elements = weight ? shape[1] : 1;
        const int64_t part_elements = rows * row_elements;
        if (block <= 0 || (weight ? row_elements % block : part_elements % block) != 0) {
            format_error(source.file->path(), "Cannot split \"" + source.name + "\" of " + source.file->path() +
                                                  " into q, k and v: its " + ggml_type_name(source.type) +
                                                  " blocks straddle the thirds");
        }
        const uint64_t part_bytes = static_cast<uint64_t>(part_elements / block) * ggml_type_size(source.type);
        if (part_bytes * 3 != source.nbytes) {
            format_error(source.file->path(), "Invalid model " + source.file->path() + ": \"" + source.name +
                                                  "\" holds " + std::to_string(source.nbytes) +
                                                  " bytes, which does not match its shape");
        }
        const char * parts[] = {"q_proj.", "k_proj.", "v_proj."};
        for (int i = 0; i < 3; ++i) {
            TensorRecord record = source;
            record.name = base + parts[i] + (weight ? "weight" : "bias");
            record.shape = weight ? std::vector<int64_t>{rows, shape[1]} : std::vector<int64_t>{rows};
            record.offset = source.offset + part_bytes * i;
            record.nbytes = part_bytes;
            insert(std::move(record), source.name);
        }
    }

    CanonicalModel & model_;
};

// CLIP text-model names (what follows "text_model." or transformers >= 5.6's flat names).
std::optional<std::string> clip_name(const std::string & name) {
    const std::string inner = starts_with(name, "text_model.") ? name.substr(11) : name;
    // Not embeddings.position_ids: a buffer of 0..76, not a weight.
    if (inner == "embeddings.token_embedding.weight" || inner == "embeddings.position_embedding.weight" ||
        starts_with(inner, "encoder.layers.") || starts_with(inner, "final_layer_norm.")) {
        return inner;
    }
    return std::nullopt;
}

// The number of resnets per UNet level, from where LDM's first downsampler sits
// (input_blocks.<layers_per_block + 1>.0.op).
int ldm_layers_per_block(const TensorIndex & index) {
    int best = 0;
    const std::string prefix = "model.diffusion_model.input_blocks.";
    for (const TensorRecord & t : index.tensors) {
        if (!starts_with(t.name, prefix.c_str()) || !ends_with(t.name, ".0.op.weight")) continue;
        size_t pos = prefix.size();
        int n = 0;
        if (read_index(t.name, pos, n) && n >= 2 && (best == 0 || n < best)) best = n;
    }
    return best ? best - 1 : 2;
}

int ldm_vae_levels(const TensorIndex & index, const std::string & prefix) {
    int levels = 0;
    const std::string up = prefix + "decoder.up.";
    for (const TensorRecord & t : index.tensors) {
        if (!starts_with(t.name, up.c_str())) continue;
        size_t pos = up.size();
        int n = 0;
        if (read_index(t.name, pos, n)) levels = std::max(levels, n + 1);
    }
    return levels ? levels : 4;
}

bool any_prefix(const TensorIndex & index, const char * prefix) {
    return std::any_of(index.tensors.begin(), index.tensors.end(),
                       [&](const TensorRecord & t) { return starts_with(t.name, prefix); });
}

void log_ignored(const CanonicalModel & model) {
    if (model.ignored.empty()) return;
    log(LogLevel::debug, "%s: ignoring %zu tensors that are not part of the model: %s", model.path.c_str(),
        model.ignored.size(), first_names(model.ignored, 8).c_str());
}

// A VAE tensor name in LDM or diffusers style (prefix already removed) → canonical, or nullopt.
std::optional<std::string> any_vae_name(const std::string & name, int levels) {
    if (auto mapped = ldm_vae_name(name, levels)) return "vae." + *mapped;
    if (is_diffusers_vae_name(name)) return "vae." + name;
    return std::nullopt;
}

void map_ldm(const TensorIndex & index, CanonicalModel & model) {
    Builder builder(model);
    const int layers_per_block = ldm_layers_per_block(index);
    const int vae_levels = ldm_vae_levels(index, "first_stage_model.");
    for (const TensorRecord & t : index.tensors) {
        const std::string & name = t.name;
        std::optional<std::string> canonical;
        if (starts_with(name, "model.diffusion_model.")) {
            if (auto mapped = ldm_unet_name(name.substr(22), layers_per_block)) canonical = "unet." + *mapped;
        } else if (starts_with(name, "first_stage_model.")) {
            canonical = any_vae_name(name.substr(18), vae_levels);
        } else if (starts_with(name, "vae.")) {
            canonical = any_vae_name(name.substr(4), vae_levels);
        } else if (starts_with(name, "cond_stage_model.transformer.")) {
            model.hints.clip = true;
            if (auto mapped = clip_name(name.substr(29))) {
                canonical = "text_encoder." + *mapped;
                // stable-diffusion.cpp's renaming of SD2 keeps OpenCLIP's fused projection.
                if (ends_with(*mapped, ".self_attn.in_proj.weight")) model.hints.open_clip = true;
            }
        } else if (starts_with(name, "cond_stage_model.model.")) {
            model.hints.open_clip = true;
            if (auto mapped = open_clip_name(name.substr(23))) canonical = "text_encoder." + *mapped;
        } else if (name == "v_pred") {
            model.hints.v_pred_marker = true;
        }
        if (canonical) {
            builder.add(*canonical, t);
        } else {
            builder.ignore(name);
        }
    }
}

void map_canonical(const TensorIndex & index, CanonicalModel & model) {
    Builder builder(model);
    for (const TensorRecord & t : index.tensors) {
        const std::string & name = t.name;
        if (starts_with(name, "unet.") || starts_with(name, "vae.")) {
            builder.add(name, t);
        } else if (starts_with(name, "text_encoder.")) {
            if (auto mapped = clip_name(name.substr(13))) {
                builder.add("text_encoder." + *mapped, t);
            } else {
                builder.ignore(name);
            }
        } else {
            if (name == "v_pred") model.hints.v_pred_marker = true;
            builder.ignore(name);
        }
    }
}

std::shared_ptr<const json::Value> read_json_file(const fs::path & file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return nullptr;
    const std::string path = file.string();
    std::shared_ptr<const MappedFile> mapped = MappedFile::open(path);
    return parse_json_config(std::string_view(reinterpret_cast<const char *>(mapped->data()), mapped->size()), path);
}

// The weight files of one diffusers component, in order of preference: safetensors (full
// precision, then the fp16 variant, then sharded), then PyTorch .bin files (read by the
// checkpoint reader, which only rebuilds tensors).
std::vector<fs::path> component_weight_files(const fs::path & dir, const std::string & component) {
    const bool text = component == "text_encoder";
    const std::string stem = text ? "model" : "diffusion_pytorch_model";
    const std::string bin_stem = text ? "pytorch_model" : "diffusion_pytorch_model";
    const std::string candidates[] = {stem + ".safetensors", stem + ".fp16.safetensors",
                                      stem + ".safetensors.index.json", stem + ".fp16.safetensors.index.json",
                                      bin_stem + ".bin", bin_stem + ".fp16.bin"};
    std::error_code ec;
    for (const std::string & candidate : candidates) {
        const fs::path file = dir / candidate;
        if (!fs::is_regular_file(file, ec)) continue;
        if (!ends_with(candidate, ".index.json")) return {file};
        // Sharded weights: {"weight_map": {tensor: shard file}}.
        auto index = read_json_file(file);
        const json::Value * map = index->find("weight_map");
        if (!map || !map->is_object()) format_error(file.string(), "Invalid shard index " + file.string() + ": no weight_map");
        std::set<std::string> shards;
        for (const auto & [tensor, shard] : map->as_object()) {
            if (!shard.is_string() || shard.as_string().empty() ||
                shard.as_string().find_first_of("/\\") != std::string::npos || shard.as_string() == "..") {
                format_error(file.string(), "Invalid shard index " + file.string() + ": bad file name for " + tensor);
            }
            shards.insert(shard.as_string());
        }
        std::vector<fs::path> files;
        for (const std::string & shard : shards) files.push_back(dir / shard);
        return files;
    }
    std::string found;
    for (const auto & entry : fs::directory_iterator(dir, ec)) {
        if (entry.path().filename() == "config.json") continue;
        found += (found.empty() ? "" : ", ") + entry.path().filename().string();
    }
    format_error(dir.string(), "No weights in " + dir.string() + ": expected " + candidates[0] + " (or " + candidates[4] +
                                   ")" + (found.empty() ? "" : "; found " + found + " (convert them to safetensors)"));
}

void map_folder(CanonicalModel & model) {
    const fs::path root(model.path);
    model.layout = ModelLayout::diffusers;
    ModelHints & hints = model.hints;
    hints.model_index = read_json_file(root / "model_index.json");
    std::error_code ec;
    if (hints.model_index && hints.model_index->find("text_encoder_2")) {
        format_error(model.path, model.path + " is an SDXL (or SD3) pipeline, which is not supported: only Stable Diffusion 1.x and 2.x");
    }
    if (!hints.model_index && !fs::is_directory(root / "unet", ec)) {
        format_error(model.path, model.path + " is a folder but not a diffusers pipeline: it has no model_index.json or unet/");
    }
    hints.unet_config = read_json_file(root / "unet" / "config.json");
    hints.vae_config = read_json_file(root / "vae" / "config.json");
    hints.text_encoder_config = read_json_file(root / "text_encoder" / "config.json");
    hints.scheduler_config = read_json_file(root / "scheduler" / "scheduler_config.json");
    hints.tokenizer_config = read_json_file(root / "tokenizer" / "tokenizer_config.json");

    Builder builder(model);
    bool first = true;
    for (const char * component : {"unet", "vae", "text_encoder"}) {
        const fs::path dir = root / component;
        if (!fs::is_directory(dir, ec)) continue;  // open_model reports the missing tensors
        for (const fs::path & file : component_weight_files(dir, component)) {
            TensorIndex index = read_model_file(file.string());
            if (first) model.format = index.format;
            first = false;
            const bool text = std::strcmp(component, "text_encoder") == 0;
            for (const TensorRecord & t : index.tensors) {
                if (text) {
                    if (auto mapped = clip_name(t.name)) {
                        builder.add("text_encoder." + *mapped, t);
                    } else {
                        builder.ignore(std::string(component) + "/" + t.name);
                    }
                } else {
                    builder.add(std::string(component) + "." + t.name, t);
                }
            }
        }
    }
}

std::string replace_prefix(const std::string & s, const char * from, const char * to) {
    return starts_with(s, from) ? to + s.substr(std::strlen(from)) : s;
}

// Reads digits and a following dot at `pos` (0 if there are none): for names we made ourselves.
int read_int(const std::string & s, size_t & pos) {
    int v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') v = v * 10 + (s[pos++] - '0');
    if (pos < s.size() && s[pos] == '.') ++pos;
    return v;
}

std::string ldm_resnet(const std::string & rest) {
    static const std::pair<const char *, const char *> names[] = {
        {"norm1.", "in_layers.0."}, {"conv1.", "in_layers.2."}, {"time_emb_proj.", "emb_layers.1."},
        {"norm2.", "out_layers.0."}, {"conv2.", "out_layers.3."}, {"conv_shortcut.", "skip_connection."}};
    for (const auto & [from, to] : names) {
        if (starts_with(rest, from)) return to + rest.substr(std::strlen(from));
    }
    return rest;
}

// The name a canonical UNet tensor has in an original checkpoint.
std::string ldm_unet_original(const std::string & name, int layers_per_block, const std::vector<bool> & cross_attention) {
    const int per_level = layers_per_block + 1;
    if (starts_with(name, "down_blocks.") || starts_with(name, "up_blocks.")) {
        const bool down = starts_with(name, "down_blocks.");
        size_t pos = down ? 12 : 10;
        const int level = read_int(name, pos);
        const std::string rest = name.substr(pos);
        std::string kind = rest.substr(0, rest.find('.'));
        size_t p2 = kind.size() + 1;
        const int j = read_int(rest, p2);
        const std::string tail = rest.substr(p2);
        if (down) {
            const int block = 1 + level * per_level + (kind == "downsamplers" ? layers_per_block : j);
            if (kind == "resnets") return "input_blocks." + std::to_string(block) + ".0." + ldm_resnet(tail);
            if (kind == "attentions") return "input_blocks." + std::to_string(block) + ".1." + tail;
            return "input_blocks." + std::to_string(block) + ".0.op." + replace_prefix(tail, "conv.", "");
        }
        const int down_level = static_cast<int>(cross_attention.size()) - 1 - level;
        const int block = level * per_level + (kind == "upsamplers" ? layers_per_block : j);
        if (kind == "resnets") return "output_blocks." + std::to_string(block) + ".0." + ldm_resnet(tail);
        if (kind == "attentions") return "output_blocks." + std::to_string(block) + ".1." + tail;
        const bool attention = down_level >= 0 && cross_attention[down_level];
        return "output_blocks." + std::to_string(block) + (attention ? ".2." : ".1.") + tail;
    }
    if (starts_with(name, "mid_block.resnets.")) {
        size_t pos = 18;
        const int j = read_int(name, pos);
        return "middle_block." + std::to_string(2 * j) + "." + ldm_resnet(name.substr(pos));
    }
    if (starts_with(name, "mid_block.attentions.0.")) return "middle_block.1." + name.substr(23);
    for (const auto & [from, to] : {std::pair<const char *, const char *>{"time_embedding.linear_1.", "time_embed.0."},
                                    {"time_embedding.linear_2.", "time_embed.2."},
                                    {"conv_in.", "input_blocks.0.0."},
                                    {"conv_norm_out.", "out.0."},
                                    {"conv_out.", "out.2."}}) {
        if (starts_with(name, from)) return to + name.substr(std::strlen(from));
    }
    return name;
}

std::string ldm_vae_original(const std::string & name, int levels) {
    for (const char * side : {"encoder.", "decoder."}) {
        if (!starts_with(name, side)) continue;
        const bool encoder = std::strcmp(side, "encoder.") == 0;
        std::string rest = name.substr(8);
        if (starts_with(rest, "conv_norm_out.")) return side + ("norm_out." + rest.substr(14));
        if (starts_with(rest, encoder ? "down_blocks." : "up_blocks.")) {
            size_t pos = encoder ? 12 : 10;
            const int level = read_int(rest, pos);
            const int ldm = encoder ? level : levels - 1 - level;
            const std::string tail = rest.substr(pos);
            const std::string prefix = std::string(side) + (encoder ? "down." : "up.") + std::to_string(ldm) + ".";
            if (starts_with(tail, "resnets.")) {
                size_t p2 = 8;
                const int j = read_int(tail, p2);
                return prefix + "block." + std::to_string(j) + "." + replace_prefix(tail.substr(p2), "conv_shortcut.", "nin_shortcut.");
            }
            return prefix + replace_prefix(replace_prefix(tail, "downsamplers.0.", "downsample."), "upsamplers.0.", "upsample.");
        }
        if (starts_with(rest, "mid_block.resnets.")) {
            size_t pos = 18;
            const int j = read_int(rest, pos);
            return side + ("mid.block_" + std::to_string(j + 1) + "." + rest.substr(pos));
        }
        if (starts_with(rest, "mid_block.attentions.0.")) {
            std::string tail = rest.substr(23);
            for (const auto & [from, to] : {std::pair<const char *, const char *>{"group_norm.", "norm."}, {"to_q.", "q."},
                                            {"to_k.", "k."}, {"to_v.", "v."}, {"to_out.0.", "proj_out."}}) {
                if (starts_with(tail, from)) return side + ("mid.attn_1." + (to + tail.substr(std::strlen(from))));
            }
        }
        return name;
    }
    return name;
}

std::string open_clip_original(const std::string & name) {
    if (name == "embeddings.token_embedding.weight") return "token_embedding.weight";
    if (name == "embeddings.position_embedding.weight") return "positional_embedding";
    if (starts_with(name, "final_layer_norm.")) return "ln_final." + name.substr(17);
    if (starts_with(name, "encoder.layers.")) {
        size_t pos = 15;
        const int layer = read_int(name, pos);
        std::string rest = name.substr(pos);
        const std::string prefix = "transformer.resblocks." + std::to_string(layer) + ".";
        for (const char * qkv : {"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."}) {
            if (starts_with(rest, qkv)) return prefix + "attn.in_proj_" + rest.substr(std::strlen(qkv));
        }
        for (const auto & [from, to] : {std::pair<const char *, const char *>{"self_attn.out_proj.", "attn.out_proj."},
                                        {"layer_norm1.", "ln_1."}, {"layer_norm2.", "ln_2."},
                                        {"mlp.fc1.", "mlp.c_fc."}, {"mlp.fc2.", "mlp.c_proj."}}) {
            if (starts_with(rest, from)) return prefix + to + rest.substr(std::strlen(from));
        }
    }
    return name;
}

} // namespace

std::shared_ptr<const json::Value> parse_json_config(std::string_view text, const std::string & path) {
    try {
        auto value = std::make_shared<json::Value>(json::parse(text));
        if (!value->is_object()) format_error(path, "Invalid config " + path + ": expected a JSON object");
        return value;
    } catch (const json::ParseError & e) {
        format_error(path, "Invalid config " + path + ": " + e.what());
    }
}

std::optional<std::string> ldm_unet_name(const std::string & name, int layers_per_block) {
    if (auto fixed = rename_prefix(name, {{"time_embed.0.", "time_embedding.linear_1."},
                                          {"time_embed.2.", "time_embedding.linear_2."},
                                          {"input_blocks.0.0.", "conv_in."},
                                          {"out.0.", "conv_norm_out."},
                                          {"out.2.", "conv_out."}})) {
        return fixed;
    }
    if (layers_per_block < 1) return std::nullopt;
    // LDM numbers blocks through all levels: each down level has layers_per_block resnet(+attention)
    // blocks and then a downsampler block; each up level layers_per_block + 1 blocks, the last of
    // which ends with the upsampler.
    const int per_level = layers_per_block + 1;
    size_t pos = 0;
    int n = 0;
    int m = 0;
    if (starts_with(name, "input_blocks.")) {
        pos = 13;
        if (!read_index(name, pos, n) || !read_index(name, pos, m) || n < 1) return std::nullopt;
        const std::string rest = name.substr(pos);
        const int level = (n - 1) / per_level;
        const int j = (n - 1) % per_level;
        const std::string prefix = "down_blocks." + std::to_string(level) + ".";
        if (j == layers_per_block) {
            if (m == 0 && starts_with(rest, "op.")) return prefix + "downsamplers.0.conv." + rest.substr(3);
            return std::nullopt;
        }
        if (m == 0) {
            if (auto resnet = unet_resnet(rest)) return prefix + "resnets." + std::to_string(j) + "." + *resnet;
            return std::nullopt;
        }
        if (m == 1) return prefix + "attentions." + std::to_string(j) + "." + rest;
        return std::nullopt;
    }
    if (starts_with(name, "middle_block.")) {
        pos = 13;
        if (!read_index(name, pos, m)) return std::nullopt;
        const std::string rest = name.substr(pos);
        if (m == 0 || m == 2) {
            if (auto resnet = unet_resnet(rest)) return "mid_block.resnets." + std::to_string(m / 2) + "." + *resnet;
            return std::nullopt;
        }
        if (m == 1) return "mid_block.attentions.0." + rest;
        return std::nullopt;
    }
    if (starts_with(name, "output_blocks.")) {
        pos = 14;
        if (!read_index(name, pos, n) || !read_index(name, pos, m)) return std::nullopt;
        const std::string rest = name.substr(pos);
        const int level = n / per_level;
        const int j = n % per_level;
        const std::string prefix = "up_blocks." + std::to_string(level) + ".";
        if (m == 0) {
            if (auto resnet = unet_resnet(rest)) return prefix + "resnets." + std::to_string(j) + "." + *resnet;
            return std::nullopt;
        }
        // The upsampler follows the resnet (index 1) or the resnet and attention (index 2).
        if ((m == 1 || m == 2) && starts_with(rest, "conv.")) {
            if (j != layers_per_block) return std::nullopt;
            return prefix + "upsamplers.0.conv." + rest.substr(5);
        }
        if (m == 1) return prefix + "attentions." + std::to_string(j) + "." + rest;
        return std::nullopt;
    }
    return std::nullopt;
}

std::optional<std::string> ldm_vae_name(const std::string & name, int levels) {
    if (starts_with(name, "quant_conv.") || starts_with(name, "post_quant_conv.")) return name;
    std::string side;
    if (starts_with(name, "encoder.")) side = "encoder.";
    if (starts_with(name, "decoder.")) side = "decoder.";
    if (side.empty()) return std::nullopt;
    const std::string rest = name.substr(side.size());
    if (starts_with(rest, "conv_in.") || starts_with(rest, "conv_out.")) return name;
    if (starts_with(rest, "norm_out.")) return side + "conv_norm_out." + rest.substr(9);
    size_t pos = 0;
    int level = 0;
    int j = 0;
    const bool encoder = side == "encoder.";
    if (starts_with(rest, encoder ? "down." : "up.")) {
        pos = encoder ? 5 : 3;
        if (!read_index(rest, pos, level) || level >= levels) return std::nullopt;
        // LDM numbers decoder levels from the lowest resolution up; diffusers in decoding order.
        const int ours = encoder ? level : levels - 1 - level;
        const std::string prefix = side + (encoder ? "down_blocks." : "up_blocks.") + std::to_string(ours) + ".";
        const std::string tail = rest.substr(pos);
        if (starts_with(tail, "block.")) {
            pos = 6;
            if (!read_index(tail, pos, j)) return std::nullopt;
            return prefix + "resnets." + std::to_string(j) + "." + vae_resnet(tail.substr(pos));
        }
        const char * sampler = encoder ? "downsample.conv." : "upsample.conv.";
        if (starts_with(tail, sampler)) {
            return prefix + (encoder ? "downsamplers.0.conv." : "upsamplers.0.conv.") + tail.substr(std::strlen(sampler));
        }
        return std::nullopt;
    }
    if (starts_with(rest, "mid.block_1.")) return side + "mid_block.resnets.0." + vae_resnet(rest.substr(12));
    if (starts_with(rest, "mid.block_2.")) return side + "mid_block.resnets.1." + vae_resnet(rest.substr(12));
    if (starts_with(rest, "mid.attn_1.")) {
        if (auto inner = rename_prefix(rest.substr(11), {{"norm.", "group_norm."},
                                                         {"q.", "to_q."},
                                                         {"k.", "to_k."},
                                                         {"v.", "to_v."},
                                                         {"proj_out.", "to_out.0."}})) {
            return side + "mid_block.attentions.0." + *inner;
        }
    }
    return std::nullopt;
}

std::optional<std::string> open_clip_name(const std::string & name) {
    if (name == "token_embedding.weight") return "embeddings.token_embedding.weight";
    if (name == "positional_embedding") return "embeddings.position_embedding.weight";
    if (starts_with(name, "ln_final.")) return "final_layer_norm." + name.substr(9);
    if (!starts_with(name, "transformer.resblocks.")) return std::nullopt;  // text_projection, logit_scale, ...
    size_t pos = 22;
    int layer = 0;
    if (!read_index(name, pos, layer)) return std::nullopt;
    const std::string rest = name.substr(pos);
    const std::string prefix = "encoder.layers." + std::to_string(layer) + ".";
    if (rest == "attn.in_proj_weight") return prefix + "self_attn.in_proj.weight";  // split by the Builder
    if (rest == "attn.in_proj_bias") return prefix + "self_attn.in_proj.bias";
    if (auto mapped = rename_prefix(rest, {{"attn.out_proj.", "self_attn.out_proj."},
                                           {"ln_1.", "layer_norm1."},
                                           {"ln_2.", "layer_norm2."},
                                           {"mlp.c_fc.", "mlp.fc1."},
                                           {"mlp.c_proj.", "mlp.fc2."}})) {
        return prefix + *mapped;
    }
    return std::nullopt;
}

std::string ldm_original_name(const std::string & canonical, int unet_layers_per_block,
                              const std::vector<bool> & unet_cross_attention, int vae_levels, bool open_clip) {
    if (starts_with(canonical, "unet.")) {
        return "model.diffusion_model." + ldm_unet_original(canonical.substr(5), unet_layers_per_block, unet_cross_attention);
    }
    if (starts_with(canonical, "vae.")) return "first_stage_model." + ldm_vae_original(canonical.substr(4), vae_levels);
    if (starts_with(canonical, "text_encoder.")) {
        return open_clip ? "cond_stage_model.model." + open_clip_original(canonical.substr(13))
                         : "cond_stage_model.transformer.text_model." + canonical.substr(13);
    }
    return canonical;
}

CanonicalModel map_model(const std::string & path) {
    CanonicalModel model;
    model.path = path;
    std::error_code ec;
    if (fs::is_directory(fs::path(path), ec)) {
        map_folder(model);
        log_ignored(model);
        return model;
    }
    TensorIndex index = read_model_file(path);
    model.format = index.format;
    model.hints.metadata = index.metadata;
    if (any_prefix(index, "conditioner.embedders.")) {
        format_error(path, path + " is not a Stable Diffusion 1.x/2.x model: it is an SDXL checkpoint, which is not supported");
    }
    if (any_prefix(index, "model.diffusion_model.")) {
        model.layout = ModelLayout::ldm;
        map_ldm(index, model);
    } else if (any_prefix(index, "unet.")) {
        model.layout = ModelLayout::canonical;
        map_canonical(index, model);
    } else {
        std::string what = "it has no UNet tensors (model.diffusion_model.* or unet.*)";
        if (any_prefix(index, "down_blocks.") || any_prefix(index, "encoder.down_blocks.") ||
            any_prefix(index, "text_model.")) {
            what = "it looks like one component of a diffusers folder; give the folder (the one with model_index.json)";
        } else if (any_prefix(index, "lora_") || any_prefix(index, "lora.")) {
            what = "it looks like a LoRA, which applies to a model but is not one";
        } else if (any_prefix(index, "encoder.down.") || any_prefix(index, "first_stage_model.")) {
            what = "it looks like a VAE on its own (use it as the `vae` option)";
        }
        format_error(path, path + " is not a Stable Diffusion 1.x/2.x model: " + what);
    }
    log_ignored(model);
    return model;
}

CanonicalModel map_vae_file(const std::string & path) {
    CanonicalModel model;
    model.path = path;
    TensorIndex index = read_model_file(path);
    model.format = index.format;
    model.hints.metadata = index.metadata;
    std::string prefix;
    if (any_prefix(index, "first_stage_model.")) prefix = "first_stage_model.";
    else if (any_prefix(index, "vae.")) prefix = "vae.";
    model.layout = any_prefix(index, (prefix + "encoder.down_blocks.").c_str()) ? ModelLayout::diffusers : ModelLayout::ldm;
    const int levels = ldm_vae_levels(index, prefix);
    Builder builder(model);
    for (const TensorRecord & t : index.tensors) {
        std::optional<std::string> canonical;
        if (starts_with(t.name, prefix.c_str())) canonical = any_vae_name(t.name.substr(prefix.size()), levels);
        if (canonical) {
            builder.add(*canonical, t);
        } else {
            builder.ignore(t.name);  // e.g. the training loss's discriminator ("loss.*")
        }
    }
    if (model.tensors.empty()) format_error(path, path + " is not a VAE: it has no encoder.* or decoder.* tensors");
    log_ignored(model);
    return model;
}

} // namespace sd
