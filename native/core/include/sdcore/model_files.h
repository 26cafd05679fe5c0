#pragma once
// Model files without loading a model: what a file or diffusers folder holds (in its own names or
// in canonical ones, with what detection says), single tensors read as float32, GGUF files
// written, and conversion of any readable model to GGUF.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sdcore/model_config.h"
#include "sdcore/tensor.h"

namespace sd {

// A tensor as stored: name, type (ggml's name for it: "f16", "q4_K", "i64", …) and shape
// (outermost first, as PyTorch lists it).
struct TensorInfo {
    std::string name;
    std::string type;
    std::vector<int64_t> shape;
};

// ---- one file, in its own names (io/model_file_reader.cpp) ----

struct ModelFileInfo {
    FileFormat format = FileFormat::safetensors;
    std::string path;
    std::map<std::string, std::string> metadata;  // string metadata (safetensors __metadata__, GGUF KV)
    std::vector<TensorInfo> tensors;              // in file order
};

// Reads a file's index, choosing the reader by its first bytes (not its extension). Throws
// sd::Error ERR_MODEL_FORMAT (with the path) on anything malformed, ERR_UNSAFE_PICKLE for a
// checkpoint whose pickle names anything but torch's state-dict globals, ERR_FILE_NOT_FOUND /
// ERR_FILE_READ when the file cannot be opened.
ModelFileInfo inspect_model_file(const std::string & path);

// One tensor of a file by its stored name, as float32. Throws like inspect_model_file, and
// ERR_TENSOR_NOT_FOUND when the file has no such tensor.
HostTensor read_model_file_tensor(const std::string & path, const std::string & name);

// ---- a model, in canonical names (model/detection.cpp) ----

struct ModelInspection {
    ModelConfig config;
    ModelLayout layout = ModelLayout::ldm;
    FileFormat format = FileFormat::safetensors;
    std::string path;
    size_t ignored_tensors = 0;                // names in the source that map to nothing (EMA, optimizer, ...)
    std::vector<std::string> unused_tensors;   // canonical tensors the networks do not read (SD2's last text layer)
    std::vector<TensorInfo> tensors;           // canonical names
};

// Maps a model file or diffusers folder to canonical names ("unet.conv_in.weight"), detects its
// configuration and checks that every tensor the networks need is there. Throws sd::Error
// ERR_FILE_NOT_FOUND / ERR_FILE_READ, ERR_MODEL_FORMAT, ERR_MODEL_INCOMPLETE (naming the tensors).
ModelInspection inspect_model(const std::string & path, const DetectOptions & options = {});

// Canonical tensors of a model as float32, in the order asked (one mapping for many reads).
// Throws ERR_TENSOR_NOT_FOUND for a name the model does not have.
std::vector<HostTensor> read_canonical_tensors(const std::string & path, const std::vector<std::string> & names);

// ---- writing GGUF (io/gguf_writer.cpp) ----
// Writes tensors and string metadata to a GGUF file, converting each tensor to the storage type
// asked for (f32, f16, bf16 or one of ggml's 32-element block quantizations). Tensors are pulled
// one at a time through a callback, so converting a model never holds more than one tensor.

struct GgufTensorSource {
    std::string name;                      // shorter than 128 bytes, unique
    std::vector<int64_t> shape;            // outermost first, 1 to 4 dimensions, each ≥ 1
    WeightType type = WeightType::f16;
    // Fills `out` with the tensor's element_count(shape) values as float32.
    std::function<void(float * out)> read;
};

struct GgufWriteReport {
    // Tensors a quantized type was asked for whose rows (innermost dimension) are not a whole
    // number of 32-element blocks: they are stored as f16 instead.
    std::vector<std::string> kept_f16;
};

// Throws sd::RangeError for invalid sources (names, shapes, reserved metadata keys) before
// anything is written, ERR_FILE_WRITE if the file cannot be written (a partial file is removed),
// and whatever a source's `read` throws.
GgufWriteReport write_gguf(const std::string & path, const std::vector<GgufTensorSource> & tensors,
                           const std::map<std::string, std::string> & metadata);

// ---- conversion (model/convert_to_gguf.cpp) ----
// Any readable model (diffusers folder, original checkpoint, GGUF) to a GGUF file in canonical
// names with sdnode.* metadata, its weights stored by the weight-type rule of io/weight_types.h:
// the same types a load with that weightType gives.

struct ConvertOptions {
    WeightType weight_type = WeightType::f16;
    DetectOptions detect;
    std::string vae_path;  // a separate VAE file replacing the model's own
};

struct ConvertReport {
    ModelConfig config;
    size_t tensor_count = 0;
    uint64_t bytes_written = 0;
};

ConvertReport convert_model(const std::string & input, const std::string & output, const ConvertOptions & options);

} // namespace sd
