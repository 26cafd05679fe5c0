// What detection reads besides tensor shapes: a diffusers folder's JSON files (model_index.json,
// unet/config.json, vae/config.json, text_encoder/config.json, scheduler/scheduler_config.json,
// tokenizer/tokenizer_config.json) and a single file's metadata (sdnode.*, modelspec.*,
// global_step). The input is those texts separated by NUL bytes, in that order, the metadata
// last as key=value lines; an empty part is a missing file. They replace the tiny SD 1.x
// diffusers model's own, and detection and the completeness check run on the result.
#include <memory>
#include <string_view>
#include <vector>

#include "fixtures.h"
#include "fuzz_input.h"
#include "model/detection.h"
#include "model/name_mapping.h"

namespace {

sd::CanonicalModel & tiny_model() {
    static sd::CanonicalModel model = sd::map_model(fuzz::source_path("test/fixtures/tiny/sd1-diffusers"));
    return model;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    size_t begin = 0;
    for (;;) {
        const size_t end = text.find(separator, begin);
        parts.push_back(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
        if (end == std::string_view::npos) return parts;
        begin = end + 1;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    sd::CanonicalModel & model = tiny_model();
    const std::vector<std::string_view> parts = split(std::string_view(reinterpret_cast<const char *>(data), size), '\0');
    auto part = [&](size_t i) { return i < parts.size() ? parts[i] : std::string_view(); };
    return fuzz::expect_documented_errors([&] {
        sd::ModelHints & hints = model.hints;
        hints = sd::ModelHints();
        std::shared_ptr<const sd::json::Value> * configs[] = {&hints.model_index, &hints.unet_config, &hints.vae_config,
                                                              &hints.text_encoder_config, &hints.scheduler_config,
                                                              &hints.tokenizer_config};
        for (size_t i = 0; i < 6; ++i) {
            if (!part(i).empty()) *configs[i] = sd::parse_json_config(part(i), "config " + std::to_string(i));
        }
        for (std::string_view line : split(part(6), '\n')) {
            const size_t equals = line.find('=');
            if (equals != std::string_view::npos) hints.metadata[std::string(line.substr(0, equals))] = std::string(line.substr(equals + 1));
        }
        const sd::ModelConfig config = sd::detect_model_config(model);
        sd::config_metadata(config);
        sd::check_model(model, config);
    });
}
