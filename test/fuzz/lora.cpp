// LoRA and LyCORIS files (kohya, PEFT with lora_adapter_metadata, diffusers, LoHa, LoKr) in
// safetensors or PyTorch containers, mapped onto the tiny SD 1.x model's weights as prepare_loras
// maps them: keys, module parts, shapes, alphas, factors read and multiplied.
#include <vector>

#include "fixtures.h"
#include "fuzz_input.h"
#include "io/model_file_reader.h"
#include "model/detection.h"
#include "model/lora_file.h"

namespace {

struct TinyModel {
    sd::ModelConfig config;
    std::vector<sd::LoraWeight> weights;
};

const TinyModel & tiny_model() {
    static const TinyModel model = [] {
        const sd::OpenedModel opened = sd::open_model(fuzz::source_path("test/fixtures/tiny/sd1-ldm.safetensors"));
        TinyModel tiny;
        tiny.config = opened.config;
        for (const sd::TensorRecord & record : opened.model.tensors) tiny.weights.push_back({record.name, record.shape});
        return tiny;
    }();
    return model;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const TinyModel & model = tiny_model();
    return fuzz::expect_documented_errors([&] {
        const sd::TensorIndex index = sd::read_model_file(fuzz::input_file(data, size));
        const sd::LoraFile file = sd::map_lora_tensors(index, model.config, model.weights);
        for (const sd::LoraModule & module : file.modules) sd::lora_delta(module);
    });
}
