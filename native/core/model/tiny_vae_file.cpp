#include "model/tiny_vae_file.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "io/model_file_reader.h"
#include "io/string_util.h"
#include "sdcore/error.h"

namespace sd {

namespace {

namespace fs = std::filesystem;

constexpr const char * kDiffusersFile = "diffusion_pytorch_model.safetensors";
constexpr int64_t kImageChannels = 3;

[[noreturn]] void not_tiny_vae(const std::string & path, const std::string & why) {
    throw Error("ERR_MODEL_FORMAT",
                "Not a TAESD (tiny autoencoder) file: " + path + ": " + why +
                    ". Expected diffusers' AutoencoderTiny (encoder.layers.N…, decoder.layers.N…) or madebyollin's "
                    "taesd_encoder / taesd_decoder",
                path);
}

bool is_index(std::string_view s) {
    return !s.empty() && s.size() < 6 && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// "12.conv.0.weight" → (12, "conv.0.weight"); false when the name does not start with an index.
bool split_index(const std::string & name, int & index, std::string & rest) {
    const size_t dot = name.find('.');
    if (dot == std::string::npos || !is_index(std::string_view(name).substr(0, dot))) return false;
    index = std::stoi(name.substr(0, dot));
    rest = name.substr(dot + 1);
    return true;
}

const TensorRecord * find(const std::map<std::string, const TensorRecord *> & by_name, const std::string & name) {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
}

// A convolution's weight [out, in, k, k] (and its optional bias [out]).
void check_conv(const std::map<std::string, const TensorRecord *> & by_name, const std::string & prefix, int64_t k,
                int64_t & in, int64_t & out, bool & bias, const std::string & path) {
    const TensorRecord * w = find(by_name, prefix + ".weight");
    if (w == nullptr) not_tiny_vae(path, "no tensor " + prefix + ".weight");
    if (w->shape.size() != 4 || w->shape[2] != k || w->shape[3] != k || w->shape[0] < 1 || w->shape[1] < 1 ||
        w->shape[0] > 4096 || w->shape[1] > 4096) {
        not_tiny_vae(path, prefix + ".weight is not a " + std::to_string(k) + "×" + std::to_string(k) + " convolution kernel");
    }
    out = w->shape[0];
    in = w->shape[1];
    const TensorRecord * b = find(by_name, prefix + ".bias");
    bias = b != nullptr;
    if (b != nullptr && (b->shape.size() != 1 || b->shape[0] != out)) not_tiny_vae(path, prefix + ".bias does not match its kernel");
}

// The layer list of one side from its tensors (names "<side>.layers.N.…"), checked.
TinyVaeSide parse_side(const std::vector<TensorRecord> & tensors, const std::string & side, const std::string & path) {
    const std::string head = side + ".layers.";
    std::map<std::string, const TensorRecord *> by_name;
    std::map<int, std::vector<std::string>> by_index;
    for (const TensorRecord & t : tensors) {
        if (!starts_with(t.name, head)) continue;
        int index;
        std::string rest;
        if (!split_index(t.name.substr(head.size()), index, rest)) not_tiny_vae(path, "unexpected tensor " + t.name);
        if (t.type == GGML_TYPE_I64 || t.type == GGML_TYPE_I32 || t.type == GGML_TYPE_I16 || t.type == GGML_TYPE_I8) {
            not_tiny_vae(path, t.name + " is not a float tensor");
        }
        by_name[t.name] = &t;
        by_index[index].push_back(rest);
    }
    TinyVaeSide result;
    for (const auto & [index, names] : by_index) {
        TinyVaeLayer layer;
        layer.prefix = head + std::to_string(index);
        const bool block = std::any_of(names.begin(), names.end(), [](const std::string & n) { return starts_with(n, "conv."); });
        if (block) {
            layer.kind = TinyVaeLayer::Kind::block;
            size_t expected = 0;
            int64_t in = 0, out = 0;
            for (int c : {0, 2, 4}) {
                const std::string conv = layer.prefix + ".conv." + std::to_string(c);
                int64_t cin, cout;
                bool bias;
                check_conv(by_name, conv, 3, cin, cout, bias, path);
                if (!bias) not_tiny_vae(path, conv + " has no bias");
                if (c == 0) in = cin;
                else if (cin != out) not_tiny_vae(path, conv + " takes " + std::to_string(cin) + " channels, not " + std::to_string(out));
                out = cout;
                expected += 2;
            }
            layer.in = in;
            layer.out = out;
            if (find(by_name, layer.prefix + ".skip.weight")) {
                int64_t sin, sout;
                bool bias;
                check_conv(by_name, layer.prefix + ".skip", 1, sin, sout, bias, path);
                if (bias || sin != in || sout != out) not_tiny_vae(path, layer.prefix + ".skip does not match its block");
                layer.skip = true;
                expected += 1;
            } else if (in != out) {
                not_tiny_vae(path, layer.prefix + " changes the channels without a skip convolution");
            }
            if (names.size() != expected) not_tiny_vae(path, layer.prefix + " has unexpected tensors");
        } else {
            check_conv(by_name, layer.prefix, 3, layer.in, layer.out, layer.bias, path);
            if (names.size() != (layer.bias ? 2u : 1u)) not_tiny_vae(path, layer.prefix + " has unexpected tensors");
        }
        if (!result.layers.empty() && result.layers.back().out != layer.in) {
            not_tiny_vae(path, layer.prefix + " takes " + std::to_string(layer.in) + " channels but receives " +
                                   std::to_string(result.layers.back().out));
        }
        result.layers.push_back(layer);
    }
    const auto & layers = result.layers;
    if (layers.size() < 2 || layers.front().kind != TinyVaeLayer::Kind::conv || layers.back().kind != TinyVaeLayer::Kind::conv ||
        !layers.front().bias || !layers.back().bias) {
        not_tiny_vae(path, "the " + side + " does not start and end with a biased convolution");
    }
    for (size_t i = 1; i + 1 < layers.size(); ++i) {
        if (layers[i].kind != TinyVaeLayer::Kind::conv) continue;
        if (layers[i].bias) not_tiny_vae(path, layers[i].prefix + ": a resampling convolution with a bias");
        if (layers[i].in != layers[i].out) not_tiny_vae(path, layers[i].prefix + " changes the channels");
        ++result.resamplings;
    }
    if (result.resamplings > 6) not_tiny_vae(path, "too many resamplings in the " + side);
    return result;
}

// madebyollin's other half beside `path`: the same name with encoder ↔ decoder swapped.
std::string sibling(const std::string & path, const std::string & from, const std::string & to) {
    const fs::path p(path);
    std::string name = p.filename().string();
    const size_t at = name.rfind(from);
    if (at == std::string::npos) return "";
    name.replace(at, from.size(), to);
    const fs::path other = p.parent_path() / name;
    std::error_code ec;
    return fs::is_regular_file(other, ec) ? other.string() : "";
}

enum class Half { encoder, decoder };

// Which half a madebyollin file is, from its first convolution: the encoder's takes the image's
// 3 channels at index 0, the decoder's takes the latents at index 1 (index 0 is its weightless clamp).
Half half_of(const TensorIndex & index, const std::string & path) {
    const TensorRecord * first = index.find("0.weight");
    if (first != nullptr && first->shape.size() == 4 && first->shape[1] == kImageChannels) return Half::encoder;
    const TensorRecord * conv = index.find("1.weight");
    if (first == nullptr && conv != nullptr && conv->shape.size() == 4) return Half::decoder;
    not_tiny_vae(path, "its first convolution is neither an encoder's (0.weight, 3 input channels) nor a decoder's (1.weight)");
}

// The tensors of a madebyollin half under diffusers' names.
void add_half(TinyVaeFiles & files, const TensorIndex & index, Half half, const std::string & path) {
    for (const TensorRecord & t : index.tensors) {
        int i;
        std::string rest;
        if (!split_index(t.name, i, rest)) not_tiny_vae(path, "unexpected tensor " + t.name);
        TensorRecord r = t;
        if (half == Half::encoder) {
            r.name = "encoder.layers." + std::to_string(i) + "." + rest;
        } else {
            if (i == 0) not_tiny_vae(path, "unexpected tensor " + t.name);
            r.name = "decoder.layers." + std::to_string(i - 1) + "." + rest;
        }
        files.tensors.push_back(std::move(r));
    }
    (half == Half::encoder ? files.has_encoder : files.has_decoder) = true;
    files.files.push_back(path);
}

bool all_indexed(const TensorIndex & index) {
    int i;
    std::string rest;
    return !index.tensors.empty() &&
           std::all_of(index.tensors.begin(), index.tensors.end(), [&](const TensorRecord & t) { return split_index(t.name, i, rest); });
}

void read_original(TinyVaeFiles & files, const std::string & path, const TensorIndex & index) {
    files.layout = "taesd";
    const Half half = half_of(index, path);
    add_half(files, index, half, path);
    const std::string other = half == Half::encoder ? sibling(path, "encoder", "decoder") : sibling(path, "decoder", "encoder");
    if (other.empty()) return;
    TensorIndex other_index = read_model_file(other);
    if (!all_indexed(other_index) || half_of(other_index, other) == half) not_tiny_vae(other, "not the other half of " + path);
    add_half(files, other_index, half == Half::encoder ? Half::decoder : Half::encoder, other);
}

void read_file(TinyVaeFiles & files, const std::string & path) {
    TensorIndex index = read_model_file(path);
    if (all_indexed(index)) return read_original(files, path, index);
    files.layout = "diffusers";
    for (const TensorRecord & t : index.tensors) {
        if (starts_with(t.name, "encoder.layers.")) files.has_encoder = true;
        else if (starts_with(t.name, "decoder.layers.")) files.has_decoder = true;
        else not_tiny_vae(path, "unexpected tensor " + t.name);
        files.tensors.push_back(t);
    }
    if (!files.has_encoder && !files.has_decoder) not_tiny_vae(path, "no tensors");
    files.files.push_back(path);
}

} // namespace

TinyVaeFiles open_tiny_vae(const std::string & path) {
    TinyVaeFiles files;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        const fs::path dir(path);
        if (fs::is_regular_file(dir / kDiffusersFile, ec)) {
            read_file(files, (dir / kDiffusersFile).string());
        } else {
            std::string half;
            for (const char * name : {"taesd_decoder.safetensors", "taesd_encoder.safetensors", "taesd_decoder.pth", "taesd_encoder.pth"}) {
                if (fs::is_regular_file(dir / name, ec)) {
                    half = (dir / name).string();
                    break;
                }
            }
            if (half.empty()) {
                throw Error("ERR_MODEL_FORMAT",
                            "Not a TAESD folder: " + path + " has neither " + kDiffusersFile +
                                " (diffusers' AutoencoderTiny) nor taesd_decoder/taesd_encoder (.safetensors, .pth)",
                            path);
            }
            read_file(files, half);
        }
    } else {
        read_file(files, path);
    }
    const std::string & named = files.files.front();
    if (files.has_encoder) files.encoder = parse_side(files.tensors, "encoder", named);
    if (files.has_decoder) files.decoder = parse_side(files.tensors, "decoder", named);
    if (files.has_encoder) {
        if (files.encoder.layers.front().in != kImageChannels) not_tiny_vae(named, "the encoder does not take RGB images");
        files.latent_channels = static_cast<int>(files.encoder.layers.back().out);
    }
    if (files.has_decoder) {
        if (files.decoder.layers.back().out != kImageChannels) not_tiny_vae(named, "the decoder does not make RGB images");
        const int latent = static_cast<int>(files.decoder.layers.front().in);
        if (files.has_encoder && (latent != files.latent_channels || files.encoder.resamplings != files.decoder.resamplings)) {
            not_tiny_vae(named, "its encoder and decoder do not match");
        }
        files.latent_channels = latent;
    }
    return files;
}

} // namespace sd
