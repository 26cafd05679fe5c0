// A model in canonical names without loading it (sdcore/model_files.h): inspect_model and
// read_canonical_tensors.
#include "model/detection.h"
#include "model/name_mapping.h"
#include "sdcore/error.h"
#include "sdcore/model_files.h"

namespace sd {

ModelInspection inspect_model(const std::string & path, const DetectOptions & options) {
    OpenedModel opened = open_model(path, options);
    ModelInspection info;
    info.config = opened.config;
    info.layout = opened.model.layout;
    info.format = opened.model.format;
    info.path = opened.model.path;
    info.ignored_tensors = opened.model.ignored.size();
    info.unused_tensors = opened.unused;
    for (const TensorRecord & t : opened.model.tensors) info.tensors.push_back({t.name, ggml_type_name(t.type), t.shape});
    return info;
}

std::vector<HostTensor> read_canonical_tensors(const std::string & path, const std::vector<std::string> & names) {
    CanonicalModel model = map_model(path);
    std::vector<HostTensor> tensors;
    for (const std::string & name : names) {
        const TensorRecord * record = model.find(name);
        if (!record) throw Error("ERR_TENSOR_NOT_FOUND", "No tensor \"" + name + "\" in " + path, path);
        tensors.emplace_back(record->shape);
        read_tensor_f32(*record, tensors.back().data.data());
    }
    return tensors;
}

} // namespace sd
