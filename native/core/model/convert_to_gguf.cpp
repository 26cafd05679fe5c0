// Conversion of any readable model to GGUF (sdcore/model_files.h).
#include <filesystem>

#include "io/weight_types.h"
#include "model/detection.h"
#include "sdcore/model_files.h"

namespace sd {

ConvertReport convert_model(const std::string & input, const std::string & output, const ConvertOptions & options) {
    OpenedModel opened = open_model_with_vae(input, options.detect, options.vae_path);

    // Only what the networks read is written, so SD2's unused last text layer is dropped and
    // the file's text layer count is the one SD runs.
    std::vector<GgufTensorSource> sources;
    for (const ExpectedTensor & expected : expected_tensors(opened.config)) {
        const TensorRecord * record = opened.model.find(expected.name);
        GgufTensorSource source;
        source.name = expected.name;
        source.shape = record->shape;
        source.type = storage_type_for(expected.name, record->shape, options.weight_type);
        source.read = [record](float * out) { read_tensor_f32(*record, out); };
        sources.push_back(std::move(source));
    }

    std::map<std::string, std::string> metadata = config_metadata(opened.config);
    metadata["sdnode.weight_type"] = weight_type_name(options.weight_type);
    metadata["sdnode.converted_from"] = std::filesystem::path(input).filename().string();
    write_gguf(output, sources, metadata);

    ConvertReport report;
    report.config = opened.config;
    report.tensor_count = sources.size();
    report.bytes_written = std::filesystem::file_size(output);
    return report;
}

} // namespace sd
