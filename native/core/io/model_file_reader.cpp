#include "io/model_file_reader.h"

#include <cstring>

#include "io/container_readers.h"
#include "sdcore/error.h"
#include "sdcore/model_files.h"

namespace sd {

TensorIndex read_model_file(const std::string & path) { return read_model_file(MappedFile::open(path)); }

TensorIndex read_model_file(const std::shared_ptr<const MappedFile> & file) {
    const std::string & path = file->path();
    const uint8_t * bytes = file->data();
    const uint64_t size = file->size();
    if (size == 0) throw Error("ERR_MODEL_FORMAT", "Invalid model file " + path + ": the file is empty", path);
    if (size >= 4 && std::memcmp(bytes, "GGUF", 4) == 0) return read_gguf(file);
    if (size >= 4 && std::memcmp(bytes, "PK\x03\x04", 4) == 0) return read_checkpoint(file);
    if (size >= 9 && bytes[8] == '{') return read_safetensors(file);
    if (bytes[0] == 0x80) {
        // A bare pickle: torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False).
        throw Error("ERR_MODEL_FORMAT",
                    "Unsupported model file " + path +
                        ": this is PyTorch's legacy (pre-1.6) checkpoint format; re-save it with a current "
                        "PyTorch or convert it to safetensors",
                    path);
    }
    throw Error("ERR_MODEL_FORMAT",
                "Unrecognised model file " + path + ": not a safetensors, GGUF or PyTorch checkpoint file", path);
}

ModelFileInfo inspect_model_file(const std::string & path) {
    TensorIndex index = read_model_file(path);
    ModelFileInfo info;
    info.format = index.format;
    info.path = index.path;
    info.metadata = index.metadata;
    for (const TensorRecord & record : index.tensors) info.tensors.push_back({record.name, ggml_type_name(record.type), record.shape});
    return info;
}

HostTensor read_model_file_tensor(const std::string & path, const std::string & name) {
    TensorIndex index = read_model_file(path);
    const TensorRecord * record = index.find(name);
    if (!record) throw Error("ERR_TENSOR_NOT_FOUND", "No tensor \"" + name + "\" in " + path, path);
    HostTensor tensor(record->shape);
    read_tensor_f32(*record, tensor.data.data());
    return tensor;
}

} // namespace sd
