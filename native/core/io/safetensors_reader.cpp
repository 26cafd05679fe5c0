// safetensors: an 8-byte little-endian header length, a JSON header
// { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { str: str } },
// then the data section, to which data_offsets are relative.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "io/container_readers.h"
#include "io/json.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

namespace {

constexpr uint64_t max_header_size = 100ull * 1024 * 1024;

struct DtypeInfo {
    const char * name;
    ggml_type type;
};

// Integer and double tensors (e.g. position_ids stored as I64) are kept and converted on read;
// the float types are what weights use.
const DtypeInfo accepted_dtypes[] = {
    {"F32", GGML_TYPE_F32}, {"F16", GGML_TYPE_F16}, {"BF16", GGML_TYPE_BF16}, {"F64", GGML_TYPE_F64},
    {"I64", GGML_TYPE_I64}, {"I32", GGML_TYPE_I32}, {"I16", GGML_TYPE_I16}, {"I8", GGML_TYPE_I8},
};

[[noreturn]] void fail(const std::string & path, const std::string & message) {
    throw Error("ERR_MODEL_FORMAT", "Invalid safetensors file " + path + ": " + message, path);
}

std::string metadata_text(const json::Value & value) {
    if (value.is_string()) return value.as_string();
    if (value.is_integer()) return std::to_string(value.as_int64());
    if (value.is_number()) {
        char buffer[32];
        std::snprintf(buffer, sizeof(buffer), "%.17g", value.as_double());
        return buffer;
    }
    if (value.is_bool()) return value.as_bool() ? "true" : "false";
    return "null";
}

TensorRecord read_entry(const std::string & path, const std::string & name, const json::Value & entry,
                        uint64_t data_start, uint64_t data_size) {
    if (!entry.is_object()) fail(path, "entry \"" + name + "\" is " + json::describe(entry) + ", not an object");
    const json::Value * dtype = entry.find("dtype");
    const json::Value * shape = entry.find("shape");
    const json::Value * offsets = entry.find("data_offsets");
    if (!dtype || !dtype->is_string()) fail(path, "tensor \"" + name + "\" has no dtype string");
    if (!shape || !shape->is_array()) fail(path, "tensor \"" + name + "\" has no shape array");
    if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2) {
        fail(path, "tensor \"" + name + "\" has no data_offsets [begin, end]");
    }

    TensorRecord record;
    record.name = name;
    const DtypeInfo * info = nullptr;
    for (const auto & candidate : accepted_dtypes) {
        if (dtype->as_string() == candidate.name) info = &candidate;
    }
    if (!info) {
        fail(path, "tensor \"" + name + "\" has dtype " + dtype->as_string() +
                       ", which is not supported (F32, F16, BF16, F64 and I8…I64 are)");
    }
    record.type = info->type;

    if (shape->as_array().size() > 8) fail(path, "tensor \"" + name + "\" has more than 8 dimensions");
    for (const json::Value & dim : shape->as_array()) {
        if (!dim.is_integer() || dim.as_int64() < 0) {
            fail(path, "tensor \"" + name + "\" has a shape entry that is not a non-negative integer");
        }
        record.shape.push_back(dim.as_int64());
    }
    const uint64_t element_size = plain_type_size(record.type);
    const int64_t count = checked_element_count(record.shape, element_size);
    if (count < 0) fail(path, "tensor \"" + name + "\" has a shape whose size overflows");

    const json::Value & begin = offsets->as_array()[0];
    const json::Value & end = offsets->as_array()[1];
    if (!begin.is_integer() || !end.is_integer() || begin.as_int64() < 0 || end.as_int64() < begin.as_int64()) {
        fail(path, "tensor \"" + name + "\" has data_offsets that are not integers 0 ≤ begin ≤ end");
    }
    const uint64_t b = static_cast<uint64_t>(begin.as_int64());
    const uint64_t e = static_cast<uint64_t>(end.as_int64());
    if (e > data_size) {
        fail(path, "tensor \"" + name + "\" ends at byte " + std::to_string(e) + " of a data section of " +
                       std::to_string(data_size) + " bytes (truncated file?)");
    }
    if (e - b != static_cast<uint64_t>(count) * element_size) {
        fail(path, "tensor \"" + name + "\" has " + std::to_string(e - b) + " bytes but its shape and dtype need " +
                       std::to_string(static_cast<uint64_t>(count) * element_size));
    }
    record.offset = data_start + b;
    record.nbytes = e - b;
    return record;
}

} // namespace

TensorIndex read_safetensors(const std::shared_ptr<const MappedFile> & file) {
    const std::string & path = file->path();
    if (file->size() < 8) fail(path, "the file is shorter than its 8-byte header length");
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | file->data()[i];
    if (header_size > file->size() - 8) {
        fail(path, "the header length " + std::to_string(header_size) + " exceeds the file size " +
                       std::to_string(file->size()) + " (truncated file?)");
    }
    if (header_size > max_header_size) fail(path, "the header is larger than 100 MB");

    json::Value header;
    try {
        header = json::parse(std::string_view(reinterpret_cast<const char *>(file->data() + 8), header_size));
    } catch (const json::ParseError & e) {
        fail(path, std::string("the JSON header is malformed: ") + e.what());
    }
    if (!header.is_object()) fail(path, "the header is not a JSON object");

    TensorIndex index;
    index.format = FileFormat::safetensors;
    index.path = path;
    const uint64_t data_start = 8 + header_size;
    const uint64_t data_size = file->size() - data_start;
    for (const auto & [name, entry] : header.as_object()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) fail(path, "__metadata__ is not an object");
            for (const auto & [key, value] : entry.as_object()) {
                if (value.is_array() || value.is_object()) {
                    log(LogLevel::debug, "safetensors %s: skipping non-scalar metadata \"%s\"", path.c_str(), key.c_str());
                    continue;
                }
                index.metadata[key] = metadata_text(value);
            }
            continue;
        }
        TensorRecord record = read_entry(path, name, entry, data_start, data_size);
        record.file = file;
        index.add(std::move(record));
    }

    // Overlapping tensors would alias each other's bytes: no writer produces them.
    std::vector<const TensorRecord *> by_offset;
    for (const TensorRecord & record : index.tensors) {
        if (record.nbytes > 0) by_offset.push_back(&record);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorRecord * a, const TensorRecord * b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->nbytes) {
            fail(path, "tensors \"" + by_offset[i - 1]->name + "\" and \"" + by_offset[i]->name + "\" overlap");
        }
    }
    return index;
}

} // namespace sd
