// PyTorch checkpoints as torch.save writes them since 1.6: a ZIP archive holding
// <prefix>/data.pkl (the pickled object) and <prefix>/data/<key> (one entry per storage, stored
// uncompressed). Tensors in the pickle refer to storages by key; their bytes are used in place.
#include <cstdio>
#include <set>
#include <unordered_map>

#include "io/container_readers.h"
#include "io/pickle_reader.h"
#include "io/zip_reader.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

namespace {

using pickle::Kind;
using pickle::Object;

constexpr int max_nesting = 16;

[[noreturn]] void fail(const std::string & path, const std::string & message) {
    throw Error("ERR_MODEL_FORMAT", "Invalid checkpoint " + path + ": " + message, path);
}

std::string dims_text(const std::vector<int64_t> & dims) {
    std::string out = "[";
    for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
    return out + "]";
}

// Call it once the element count of `size` is known to fit in int64_t (checked_element_count):
// then, with no zero dimension, every partial product below fits too.
bool is_contiguous(const std::vector<int64_t> & size, const std::vector<int64_t> & stride) {
    // An empty tensor has no element to misplace, and its other dimensions may be as large as a
    // file claims: their product is never formed.
    for (int64_t dim : size) {
        if (dim == 0) return true;
    }
    int64_t expected = 1;
    for (size_t i = size.size(); i-- > 0;) {
        if (size[i] != 1 && stride[i] != expected) return false;  // strides of size-1 dims do not matter
        expected *= size[i];
    }
    return true;
}

class CheckpointReader {
public:
    explicit CheckpointReader(const std::shared_ptr<const MappedFile> & file) : file_(file), path_(file->path()) {}

    TensorIndex read() {
        for (ZipEntry & entry : read_zip_entries(*file_)) {
            std::string name = entry.name;
            entries_.emplace(std::move(name), std::move(entry));
        }
        const ZipEntry & pickle_entry = find_pickle();
        if (const ZipEntry * order = find_entry(prefix_ + "byteorder")) {
            std::string byteorder(reinterpret_cast<const char *>(file_->data() + order->offset), order->size);
            if (order->method == 0 && byteorder == "big") fail(path_, "its tensors are stored big-endian");
        }

        pickle::Unpickler unpickler(file_->data() + pickle_entry.offset, pickle_entry.size, path_);
        const Object * root = unpickler.load();
        if (root->kind != Kind::dict) fail(path_, "data.pkl does not hold a dict (a state dict or a checkpoint)");

        index_.format = FileFormat::checkpoint;
        index_.path = path_;
        // Training checkpoints keep the weights under "state_dict" beside scalars like
        // global_step; plain state dicts are the top level itself.
        const Object * weights = root;
        for (const auto & [key, value] : root->entries) {
            if (key->kind != Kind::string) continue;
            if (key->text == "state_dict" && value->kind == Kind::dict) weights = value;
            add_metadata(key->text, value);
        }
        std::set<const Object *> visited;
        add_tensors(weights, "", 0, visited);
        return std::move(index_);
    }

private:
    const ZipEntry * find_entry(const std::string & name) const {
        auto it = entries_.find(name);
        return it == entries_.end() ? nullptr : &it->second;
    }

    const ZipEntry & find_pickle() {
        const ZipEntry * found = nullptr;
        for (const auto & [name, entry] : entries_) {
            const size_t slash = name.find('/');
            const bool at_top = name == "data.pkl" || (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0);
            if (!at_top) continue;
            if (found) fail(path_, "the archive holds more than one data.pkl");
            found = &entry;
            prefix_ = name.substr(0, name.size() - std::string("data.pkl").size());
        }
        if (!found) fail(path_, "the archive has no data.pkl: it is a ZIP file but not a PyTorch checkpoint");
        if (found->method != 0) fail(path_, "data.pkl is compressed; torch.save stores it uncompressed");
        return *found;
    }

    void add_metadata(const std::string & key, const Object * value) {
        char buffer[32];
        switch (value->kind) {
            case Kind::string: index_.metadata[key] = value->text; break;
            case Kind::integer: index_.metadata[key] = std::to_string(value->integer); break;
            case Kind::boolean: index_.metadata[key] = value->boolean ? "true" : "false"; break;
            case Kind::floating:
                std::snprintf(buffer, sizeof(buffer), "%.17g", value->floating);
                index_.metadata[key] = buffer;
                break;
            default: break;
        }
    }

    void add_tensors(const Object * dict, const std::string & prefix, int depth, std::set<const Object *> & visited) {
        if (depth > max_nesting) fail(path_, "its state dict nests deeper than " + std::to_string(max_nesting) + " levels");
        // Each dict is flattened once: a pickle can make a dict contain itself, or share one
        // dict under many keys at every level of a deep nesting.
        if (!visited.insert(dict).second) fail(path_, "its state dict holds the same dict twice (or itself)");
        for (const auto & [key, value] : dict->entries) {
            if (key->kind != Kind::string) continue;
            const std::string name = prefix + key->text;
            if (value->kind == Kind::tensor) {
                add_tensor(name, value);
            } else if (value->kind == Kind::dict) {
                add_tensors(value, name + ".", depth + 1, visited);
            } else {
                log(LogLevel::debug, "checkpoint %s: skipping \"%s\", which is not a tensor", path_.c_str(), name.c_str());
            }
        }
    }

    void add_tensor(const std::string & name, const Object * tensor) {
        const Object * storage = tensor->storage;
        if (storage->storage_type == GGML_TYPE_COUNT) {
            log(LogLevel::debug, "checkpoint %s: skipping tensor \"%s\" of %s", path_.c_str(), name.c_str(),
                storage->storage_type_name.c_str());
            return;
        }
        const uint64_t element_size = static_cast<uint64_t>(storage->storage_element_size);
        const int64_t count = checked_element_count(tensor->size, element_size);
        if (count < 0) fail(path_, "tensor \"" + name + "\" has a size that overflows");
        if (!is_contiguous(tensor->size, tensor->stride)) {
            fail(path_, "tensor \"" + name + "\" is not contiguous (size " + dims_text(tensor->size) + ", stride " +
                            dims_text(tensor->stride) + "); save it with .contiguous()");
        }
        if (tensor->storage_offset > storage->storage_numel || count > storage->storage_numel - tensor->storage_offset) {
            fail(path_, "tensor \"" + name + "\" reaches beyond its storage");
        }
        const ZipEntry * entry = find_entry(prefix_ + "data/" + storage->text);
        if (!entry) fail(path_, "tensor \"" + name + "\" refers to storage \"" + storage->text + "\", which is missing");
        if (entry->method != 0) fail(path_, "storage \"" + storage->text + "\" is compressed");
        if (static_cast<uint64_t>(storage->storage_numel) > entry->size / element_size) {
            fail(path_, "storage \"" + storage->text + "\" is shorter than its " + std::to_string(storage->storage_numel) + " elements");
        }
        TensorRecord record;
        record.name = name;
        record.type = storage->storage_type;
        record.shape = tensor->size;
        record.offset = entry->offset + static_cast<uint64_t>(tensor->storage_offset) * element_size;
        record.nbytes = static_cast<uint64_t>(count) * element_size;
        record.file = file_;
        index_.add(std::move(record));
    }

    std::shared_ptr<const MappedFile> file_;
    std::string path_;
    std::unordered_map<std::string, ZipEntry> entries_;
    std::string prefix_;
    TensorIndex index_;
};

} // namespace

TensorIndex read_checkpoint(const std::shared_ptr<const MappedFile> & file) {
    return CheckpointReader(file).read();
}

} // namespace sd
