#include "model/upscaler_file.h"

#include <map>

#include "io/model_file_reader.h"
#include "io/string_util.h"
#include "sdcore/error.h"

namespace sd {

namespace {

constexpr int64_t kMaxChannels = 1024;
constexpr int kMaxBlocks = 256;
constexpr int kRdbs = 3;   // residual dense blocks per RRDB
constexpr int kConvs = 5;  // convolutions per residual dense block

[[noreturn]] void not_rrdbnet(const std::string & path, const std::string & why) {
    throw Error("ERR_UPSCALER_FORMAT",
                "Not an ESRGAN upscaler (RRDBNet) file: " + path + ": " + why +
                    ". Expected Real-ESRGAN's RRDBNet weights (conv_first, body.N.rdbK.convJ, conv_body, conv_up1, conv_up2, "
                    "conv_hr, conv_last), as .pth or .safetensors",
                path);
}

bool is_float(ggml_type type) { return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16; }

struct Checker {
    const std::map<std::string, const TensorRecord *> & by_name;
    const std::string & path;
    size_t used = 0;

    // A 3×3 convolution "<name>" with `out` outputs and `in` inputs and its bias.
    void conv(const std::string & name, int64_t out, int64_t in) {
        auto w = by_name.find(name + ".weight");
        if (w == by_name.end()) not_rrdbnet(path, "no tensor " + name + ".weight");
        const std::vector<int64_t> & s = w->second->shape;
        if (s.size() != 4 || s[0] != out || s[1] != in || s[2] != 3 || s[3] != 3) {
            not_rrdbnet(path, name + ".weight is not a 3×3 convolution from " + std::to_string(in) + " to " + std::to_string(out) +
                                  " channels");
        }
        auto b = by_name.find(name + ".bias");
        if (b == by_name.end()) not_rrdbnet(path, "no tensor " + name + ".bias");
        if (b->second->shape.size() != 1 || b->second->shape[0] != out) not_rrdbnet(path, name + ".bias does not match its kernel");
        used += 2;
    }
};

} // namespace

UpscalerFile open_upscaler(const std::string & path) {
    TensorIndex index;
    try {
        index = read_model_file(path);
    } catch (const Error & e) {
        if (e.code() != "ERR_MODEL_FORMAT") throw;
        throw Error("ERR_UPSCALER_FORMAT", std::string("Not an ESRGAN upscaler file: ") + e.what(), path);
    }
    UpscalerFile file;
    file.format = index.format == FileFormat::checkpoint ? "checkpoint" : index.format == FileFormat::gguf ? "gguf" : "safetensors";
    // Real-ESRGAN's training saves the EMA weights under "params_ema" (and sometimes the raw ones
    // under "params"); inference uses the EMA ones, as Real-ESRGAN's own loader does.
    for (const char * key : {"params_ema", "params"}) {
        const std::string head = std::string(key) + ".";
        for (const TensorRecord & t : index.tensors) {
            if (starts_with(t.name, head)) {
                file.state_dict = key;
                break;
            }
        }
        if (!file.state_dict.empty()) break;
    }
    const std::string head = file.state_dict.empty() ? "" : file.state_dict + ".";
    std::map<std::string, const TensorRecord *> by_name;
    for (const TensorRecord & t : index.tensors) {
        if (!starts_with(t.name, head)) continue;
        if (!is_float(t.type)) not_rrdbnet(path, t.name + " is not a float tensor");
        TensorRecord r = t;
        r.name = t.name.substr(head.size());
        file.tensors.push_back(std::move(r));
    }
    for (const TensorRecord & t : file.tensors) by_name[t.name] = &t;
    if (file.tensors.empty()) not_rrdbnet(path, "no tensors");

    auto first = by_name.find("conv_first.weight");
    if (first == by_name.end()) {
        if (by_name.count("model.0.weight")) not_rrdbnet(path, "this is the original ESRGAN's layout (model.N…), which is not supported yet");
        not_rrdbnet(path, "no tensor conv_first.weight");
    }
    const std::vector<int64_t> & s = first->second->shape;
    if (s.size() != 4 || s[0] < 1 || s[0] > kMaxChannels) not_rrdbnet(path, "conv_first.weight is not a convolution kernel");
    file.features = static_cast<int>(s[0]);
    file.in_channels = static_cast<int>(s[1]);
    switch (file.in_channels) {
        case 3: file.unshuffle = 1; break;
        case 12: file.unshuffle = 2; break;
        case 48: file.unshuffle = 4; break;
        default: not_rrdbnet(path, "conv_first takes " + std::to_string(file.in_channels) + " channels, not 3, 12 or 48 (RGB at ×4, ×2 or ×1)");
    }
    file.scale = 4 / file.unshuffle;

    auto grow = by_name.find("body.0.rdb1.conv1.weight");
    if (grow == by_name.end()) not_rrdbnet(path, "no tensor body.0.rdb1.conv1.weight");
    if (grow->second->shape.size() != 4 || grow->second->shape[0] < 1 || grow->second->shape[0] > kMaxChannels) {
        not_rrdbnet(path, "body.0.rdb1.conv1.weight is not a convolution kernel");
    }
    file.growth = static_cast<int>(grow->second->shape[0]);
    while (file.blocks <= kMaxBlocks && by_name.count("body." + std::to_string(file.blocks) + ".rdb1.conv1.weight")) ++file.blocks;
    if (file.blocks > kMaxBlocks) not_rrdbnet(path, "more than " + std::to_string(kMaxBlocks) + " blocks");

    Checker check{by_name, path};
    const int64_t nf = file.features, gc = file.growth;
    check.conv("conv_first", nf, file.in_channels);
    for (int b = 0; b < file.blocks; ++b) {
        for (int r = 1; r <= kRdbs; ++r) {
            const std::string rdb = "body." + std::to_string(b) + ".rdb" + std::to_string(r) + ".conv";
            for (int c = 1; c <= kConvs; ++c) check.conv(rdb + std::to_string(c), c == kConvs ? nf : gc, nf + (c - 1) * gc);
        }
    }
    for (const char * name : {"conv_body", "conv_up1", "conv_up2", "conv_hr"}) check.conv(name, nf, nf);
    auto last = by_name.find("conv_last.weight");
    file.out_channels = last != by_name.end() && !last->second->shape.empty() ? static_cast<int>(last->second->shape[0]) : 3;
    if (file.out_channels != 3) not_rrdbnet(path, "conv_last makes " + std::to_string(file.out_channels) + " channels, not RGB's 3");
    check.conv("conv_last", 3, nf);
    if (check.used != file.tensors.size()) {
        for (const TensorRecord & t : file.tensors) {
            // Name the first tensor the architecture has no place for.
            const std::string & n = t.name;
            const bool known = starts_with(n, "conv_first.") || starts_with(n, "conv_body.") || starts_with(n, "conv_up1.") ||
                               starts_with(n, "conv_up2.") || starts_with(n, "conv_hr.") || starts_with(n, "conv_last.");
            if (!known && !starts_with(n, "body.")) not_rrdbnet(path, "unexpected tensor " + head + n);
        }
        not_rrdbnet(path, "unexpected tensors in its body (" + std::to_string(file.tensors.size() - check.used) + " more than " +
                              std::to_string(file.blocks) + " blocks hold)");
    }
    return file;
}

} // namespace sd
