#pragma once
// The tensors of one model file, indexed but not loaded. Every container format (safetensors,
// GGUF, PyTorch zip checkpoints) is read into a TensorIndex: names as stored in the file, their
// types, shapes and where their bytes are. Name mapping (name_mapping.h) and loading work on
// this index, so they do not care which container a tensor came from.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml.h"
#include "io/mapped_file.h"

namespace sd {

enum class FileFormat { safetensors, gguf, checkpoint };

const char * format_name(FileFormat format);

struct TensorRecord {
    std::string name;              // as stored in the file
    ggml_type type = GGML_TYPE_F32;  // F32, F16, BF16, a ggml quantized type (GGUF), or for
                                     // non-weight tensors (position_ids) F64, I64, I32, I16, I8
    std::vector<int64_t> shape;    // outermost first, as PyTorch lists it
    uint64_t offset = 0;           // byte offset of the data in `file`
    uint64_t nbytes = 0;           // byte size of the data
    std::shared_ptr<const MappedFile> file;

    int64_t element_count() const;
    const uint8_t * data() const { return file->data() + offset; }
};

struct TensorIndex {
    FileFormat format = FileFormat::safetensors;
    std::string path;
    std::vector<TensorRecord> tensors;
    std::unordered_map<std::string, size_t> by_name;  // name → position in `tensors`
    std::map<std::string, std::string> metadata;      // string metadata (safetensors __metadata__, GGUF KV)

    const TensorRecord * find(const std::string & name) const;
    void add(TensorRecord record);  // throws ERR_MODEL_FORMAT on a duplicate name
};

// Reads the index of a file, choosing the reader by its first bytes (not its extension).
// Throws sd::Error with code ERR_MODEL_FORMAT (and the path) on anything malformed,
// ERR_UNSAFE_PICKLE for a checkpoint whose pickle names anything but torch's state-dict globals,
// and ERR_FILE_NOT_FOUND / ERR_FILE_READ when the file cannot be opened.
TensorIndex read_model_file(const std::string & path);

// Copies a tensor's element_count() values out as float32 (converting F16, BF16, quantized and
// integer types). Throws ERR_MODEL_FORMAT for types ggml cannot convert.
void read_tensor_f32(const TensorRecord & record, float * out);

} // namespace sd
