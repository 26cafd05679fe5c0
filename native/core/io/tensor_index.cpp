#include "io/tensor_index.h"

#include <cstdint>
#include <cstring>
#include <memory>

#include "io/guarded_read.h"
#include "sdcore/error.h"

namespace sd {

const char * format_name(FileFormat format) {
    switch (format) {
        case FileFormat::safetensors: return "safetensors";
        case FileFormat::gguf: return "gguf";
        case FileFormat::checkpoint: return "checkpoint";
    }
    return "unknown";
}

int64_t checked_element_count(const std::vector<int64_t> & shape, uint64_t element_size) {
    int64_t count = 1;
    for (int64_t dim : shape) {
        if (dim < 0) return -1;
        if (dim != 0 && count > INT64_MAX / dim) return -1;
        count *= dim;
    }
    if (element_size > 1 && count > INT64_MAX / static_cast<int64_t>(element_size)) return -1;
    return count;
}

size_t plain_type_size(ggml_type type) {
    switch (type) {
        case GGML_TYPE_F64:
        case GGML_TYPE_I64: return 8;
        case GGML_TYPE_F32:
        case GGML_TYPE_I32: return 4;
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
        case GGML_TYPE_I16: return 2;
        case GGML_TYPE_I8: return 1;
        default: return 0;
    }
}

int64_t TensorRecord::element_count() const {
    return checked_element_count(shape, 1);
}

const TensorRecord * TensorIndex::find(const std::string & name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &tensors[it->second];
}

void TensorIndex::add(TensorRecord record) {
    if (by_name.count(record.name)) {
        throw Error("ERR_MODEL_FORMAT", "Invalid model file " + path + ": tensor \"" + record.name + "\" appears twice", path);
    }
    by_name.emplace(record.name, tensors.size());
    tensors.push_back(std::move(record));
}

namespace {

template <typename T>
void widen(const uint8_t * data, int64_t count, float * out) {
    for (int64_t i = 0; i < count; ++i) {
        T value;
        std::memcpy(&value, data + i * sizeof(T), sizeof(T));
        out[i] = static_cast<float>(value);
    }
}

} // namespace

void read_tensor_f32(const TensorRecord & record, float * out) {
    const int64_t count = record.element_count();
    const std::string & path = record.file ? record.file->path() : std::string();
    auto fail = [&](const std::string & message) -> void {
        throw Error("ERR_MODEL_FORMAT", "Cannot read tensor \"" + record.name + "\" of " + path + ": " + message, path);
    };
    if (!record.file) fail("it has no file");
    if (count < 0) fail("its shape is invalid");
    if (record.type < 0 || record.type >= GGML_TYPE_COUNT) fail("its type is invalid");
    const int64_t block = ggml_blck_size(record.type);
    if (block <= 0 || count % block != 0) fail("its size is not a whole number of blocks of its type");
    const uint64_t expected = static_cast<uint64_t>(count / block) * ggml_type_size(record.type);
    if (record.nbytes != expected || record.offset > record.file->size() ||
        record.nbytes > record.file->size() - record.offset) {
        fail("its data does not match its shape or lies outside the file");
    }
    const ggml_type_traits * traits = ggml_get_type_traits(record.type);
    const bool integer = record.type == GGML_TYPE_F64 || record.type == GGML_TYPE_I64 || record.type == GGML_TYPE_I32 ||
                         record.type == GGML_TYPE_I16 || record.type == GGML_TYPE_I8;
    if (record.type != GGML_TYPE_F32 && !integer && traits->to_float == nullptr) {
        fail(std::string("type ") + ggml_type_name(record.type) + " cannot be converted to float");
    }
    // An empty tensor is valid and has nothing to convert (its data pointer and `out` may be null,
    // which memcpy and the converters must not be given even for zero bytes).
    if (count == 0) return;
    // ggml's converters read F16, BF16 and quantized blocks in place, as values that need their
    // natural alignment (2 or 4 bytes); a file may put a tensor at any offset (a safetensors
    // header of odd length, a ZIP entry after an odd-length name). Such bytes are copied first.
    const uint8_t * data = record.data();
    std::unique_ptr<uint64_t[]> aligned;
    if (record.type != GGML_TYPE_F32 && !integer && reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
        aligned.reset(new uint64_t[(record.nbytes + sizeof(uint64_t) - 1) / sizeof(uint64_t)]);
        guarded_copy(aligned.get(), data, static_cast<size_t>(record.nbytes), path);
        data = reinterpret_cast<const uint8_t *>(aligned.get());
    }
    // The conversion reads the map: plain loops, so that a truncated file can stop it (guarded_read.h).
    struct Conversion {
        ggml_type type;
        const uint8_t * data;
        int64_t count;
        float * out;
        ggml_to_float_t to_float;
    } conversion{record.type, data, count, out, traits->to_float};
    guarded_call([](void * context) {
        const auto & c = *static_cast<const Conversion *>(context);
        switch (c.type) {
            case GGML_TYPE_F32: std::memcpy(c.out, c.data, static_cast<size_t>(c.count) * sizeof(float)); return;
            case GGML_TYPE_F64: widen<double>(c.data, c.count, c.out); return;
            case GGML_TYPE_I64: widen<int64_t>(c.data, c.count, c.out); return;
            case GGML_TYPE_I32: widen<int32_t>(c.data, c.count, c.out); return;
            case GGML_TYPE_I16: widen<int16_t>(c.data, c.count, c.out); return;
            case GGML_TYPE_I8: widen<int8_t>(c.data, c.count, c.out); return;
            default: c.to_float(c.data, c.out, c.count); return;
        }
    }, &conversion, path);
}

} // namespace sd
