// GGUF through ggml's own parser (gguf.h), run over the mapped bytes. ggml's parser returns NULL
// on malformed headers (it checks lengths against the bytes it has, types, dimensions, element
// count overflow and offsets); what it leaves to its callers, and we check here, is that the data
// section it describes is actually in the file.
#include <cstdio>
#include <cstring>

#include "gguf.h"
#include "io/container_readers.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

namespace {

struct GgufDeleter { void operator()(gguf_context * ctx) const { gguf_free(ctx); } };
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;

// Arrays longer than this (tokenizer vocabularies in LLM files) are summarised, not listed.
constexpr size_t max_listed_array = 1024;
constexpr uint64_t max_count = 65536;

[[noreturn]] void fail(const std::string & path, const std::string & message) {
    throw Error("ERR_MODEL_FORMAT", "Invalid GGUF file " + path + ": " + message, path);
}

std::string json_quote(const char * text) {
    std::string out = "\"";
    for (const char * p = text; *p; ++p) {
        unsigned char c = static_cast<unsigned char>(*p);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char escape[8];
            std::snprintf(escape, sizeof(escape), "\\u%04x", c);
            out += escape;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string format_double(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.17g", value);
    return buffer;
}

// One element of a scalar or array value as text; `data` points at the element.
std::string scalar_text(gguf_type type, const void * data) {
    auto load = [data](auto zero) {
        decltype(zero) value;
        std::memcpy(&value, data, sizeof(value));
        return value;
    };
    switch (type) {
        case GGUF_TYPE_UINT8: return std::to_string(load(uint8_t{}));
        case GGUF_TYPE_INT8: return std::to_string(load(int8_t{}));
        case GGUF_TYPE_UINT16: return std::to_string(load(uint16_t{}));
        case GGUF_TYPE_INT16: return std::to_string(load(int16_t{}));
        case GGUF_TYPE_UINT32: return std::to_string(load(uint32_t{}));
        case GGUF_TYPE_INT32: return std::to_string(load(int32_t{}));
        case GGUF_TYPE_UINT64: return std::to_string(load(uint64_t{}));
        case GGUF_TYPE_INT64: return std::to_string(load(int64_t{}));
        case GGUF_TYPE_FLOAT32: {
            // Shortest text that reads back as the same float32.
            float value = load(float{});
            char buffer[32];
            std::snprintf(buffer, sizeof(buffer), "%.9g", static_cast<double>(value));
            return buffer;
        }
        case GGUF_TYPE_FLOAT64: return format_double(load(double{}));
        case GGUF_TYPE_BOOL: return load(int8_t{}) != 0 ? "true" : "false";
        default: return "";
    }
}

size_t scalar_size(gguf_type type) {
    switch (type) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
        case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
        case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
        default: return 0;
    }
}

std::string kv_text(const gguf_context * ctx, int64_t id) {
    const gguf_type type = gguf_get_kv_type(ctx, id);
    if (type == GGUF_TYPE_STRING) return gguf_get_val_str(ctx, id);
    if (type != GGUF_TYPE_ARRAY) return scalar_text(type, gguf_get_val_data(ctx, id));

    const gguf_type element = gguf_get_arr_type(ctx, id);
    const size_t n = gguf_get_arr_n(ctx, id);
    if (n > max_listed_array) {
        return std::string("[array of ") + std::to_string(n) + " " + gguf_type_name(element) + "]";
    }
    std::string out = "[";
    for (size_t i = 0; i < n; ++i) {
        if (i > 0) out += ", ";
        if (element == GGUF_TYPE_STRING) {
            out += json_quote(gguf_get_arr_str(ctx, id, i));
        } else if (element == GGUF_TYPE_ARRAY) {
            out += "[]";  // nested arrays: ggml's parser does not produce them
        } else {
            const uint8_t * base = static_cast<const uint8_t *>(gguf_get_arr_data(ctx, id));
            out += scalar_text(element, base + i * scalar_size(element));
        }
    }
    return out + "]";
}

} // namespace

TensorIndex read_gguf(const std::shared_ptr<const MappedFile> & file) {
    const std::string & path = file->path();
    // ggml's parser checks names for duplicates pairwise and keeps ~400 bytes per tensor from as
    // few as 25 bytes of file: bound both before handing it the file. Real models have a few
    // thousand tensors and KV pairs at most. (Counts are host-endian, as ggml reads them.)
    if (file->size() >= 24) {
        uint64_t n_tensors = 0, n_kv = 0;
        std::memcpy(&n_tensors, file->data() + 8, 8);
        std::memcpy(&n_kv, file->data() + 16, 8);
        if (n_tensors > max_count || n_kv > max_count) {
            fail(path, "it claims " + std::to_string(n_tensors) + " tensors and " + std::to_string(n_kv) +
                           " key-value pairs (at most " + std::to_string(max_count) + " of each are read)");
        }
    }
    gguf_init_params params = {/*no_alloc =*/true, /*ctx =*/nullptr};
    QuietGgmlLog quiet;  // a rejected file becomes our own ERR_MODEL_FORMAT below
    GgufPtr ctx(gguf_init_from_buffer(file->data(), static_cast<size_t>(file->size()), params));
    // ggml has logged why (through sd::log, like every ggml message).
    if (!ctx) fail(path, "the header is malformed or truncated");

    TensorIndex index;
    index.format = FileFormat::gguf;
    index.path = path;

    const int64_t n_kv = gguf_get_n_kv(ctx.get());
    for (int64_t i = 0; i < n_kv; ++i) {
        index.metadata[gguf_get_key(ctx.get(), i)] = kv_text(ctx.get(), i);
    }

    const uint64_t data_offset = gguf_get_data_offset(ctx.get());
    if (data_offset > file->size()) fail(path, "the data section starts beyond the end of the file");
    const int64_t n_tensors = gguf_get_n_tensors(ctx.get());
    for (int64_t i = 0; i < n_tensors; ++i) {
        TensorRecord record;
        record.name = gguf_get_tensor_name(ctx.get(), i);
        record.type = gguf_get_tensor_type(ctx.get(), i);
        const uint64_t offset = gguf_get_tensor_offset(ctx.get(), i);
        const uint64_t nbytes = gguf_get_tensor_size(ctx.get(), i);
        if (offset > file->size() - data_offset || nbytes > file->size() - data_offset - offset) {
            fail(path, "tensor \"" + record.name + "\" lies beyond the end of the file (truncated file?)");
        }
        // ggml lists dimensions innermost first and pads them to 4 with ones; PyTorch order is
        // outermost first. Outer dimensions of 1 cannot be told from padding and are dropped
        // (as ggml_n_dims does), keeping at least one.
        const int64_t * ne = gguf_get_tensor_ne(ctx.get(), i);
        int dims = GGML_MAX_DIMS;
        while (dims > 1 && ne[dims - 1] == 1) --dims;
        for (int d = dims - 1; d >= 0; --d) record.shape.push_back(ne[d]);
        record.offset = data_offset + offset;
        record.nbytes = nbytes;
        record.file = file;
        index.add(std::move(record));
    }
    return index;
}

} // namespace sd
