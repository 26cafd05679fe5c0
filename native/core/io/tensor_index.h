#pragma once
// The tensors of one model file, indexed but not loaded. Every container format (safetensors,
// GGUF, PyTorch zip checkpoints) is read into a TensorIndex (model_file_reader.h): names as
// stored in the file, their types, shapes and where their bytes are. Name mapping
// (name_mapping.h) and loading work on this index, so they do not care which container a tensor
// came from.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml.h"
#include "io/mapped_file.h"
#include "sdcore/model_config.h"

namespace sd {

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

// Copies a tensor's element_count() values out as float32 (converting F16, BF16, quantized and
// integer types). Throws ERR_MODEL_FORMAT for types ggml cannot convert.
void read_tensor_f32(const TensorRecord & record, float * out);

// Bytes per element of the non-block types the readers accept (F32, F16, BF16, F64, I8…I64).
size_t plain_type_size(ggml_type type);

// Product of `shape`, or -1 if a dimension is negative or the product (times `element_size`
// bytes) overflows int64.
int64_t checked_element_count(const std::vector<int64_t> & shape, uint64_t element_size);

} // namespace sd
