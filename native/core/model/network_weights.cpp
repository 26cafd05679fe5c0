#include "model/network_weights.h"

#include <algorithm>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "io/guarded_read.h"
#include "io/string_util.h"
#include "io/weight_types.h"
#include "sdcore/error.h"

namespace sd {

namespace {

// ggml lists dimensions innermost first; files list them outermost first.
ggml_tensor * new_tensor(ggml_context * ctx, ggml_type type, const std::vector<int64_t> & shape) {
    int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
    const size_t n = shape.size();
    for (size_t i = 0; i < n; ++i) ne[i] = shape[n - 1 - i];
    return ggml_new_tensor(ctx, type, static_cast<int>(std::max<size_t>(n, 1)), ne);
}

// Host weight buffers are gigabytes written once: with transparent huge pages in "madvise" mode
// (the common default) asking for them replaces ~512 page faults per 2 MB with one.
void advise_huge_pages(ggml_backend_buffer_t buffer) {
#if defined(__linux__)
    if (!ggml_backend_buffer_is_host(buffer)) return;
    const auto base = reinterpret_cast<uintptr_t>(ggml_backend_buffer_get_base(buffer));
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (base + page - 1) / page * page;
    const uintptr_t end = (base + ggml_backend_buffer_get_size(buffer)) / page * page;
    if (end > begin) madvise(reinterpret_cast<void *>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)buffer;
#endif
}

} // namespace

std::vector<int64_t> tensor_shape(const ggml_tensor * t) {
    std::vector<int64_t> shape;
    for (int d = ggml_n_dims(t) - 1; d >= 0; --d) shape.push_back(t->ne[d]);
    return shape;
}

NetworkWeights::NetworkWeights(const std::vector<TensorRecord> & records, const std::string & prefix,
                               ggml_backend_t backend, std::optional<WeightType> requested, bool keep_source, bool upload_now)
    : backend_(backend), prefix_(prefix), keep_source_(keep_source) {
    std::vector<const TensorRecord *> taken;
    for (const TensorRecord & r : records) {
        if (starts_with(r.name, prefix)) taken.push_back(&r);
    }
    for (const TensorRecord * r : taken) {
        if (r->shape.size() > GGML_MAX_DIMS) {
            throw Error("ERR_MODEL_FORMAT", "Tensor " + r->name + " has more than 4 dimensions", r->file ? r->file->path() : "");
        }
    }

    ggml_init_params params = {ggml_tensor_overhead() * (taken.size() + 1), nullptr, true};
    ctx_.reset(ggml_init(params));
    for (const TensorRecord * r : taken) {
        const std::string name = r->name.substr(prefix.size());
        // Without a requested type each weight keeps its file type, except 1-D tensors (norm weights,
        // biases), which are always F32: ggml's CPU add/mul cannot take an F16 operand.
        ggml_type type = requested              ? to_ggml_type(storage_type_for(name, r->shape, *requested))
                         : r->shape.size() == 1 ? GGML_TYPE_F32
                                                : r->type;
        ggml_tensor * t = new_tensor(ctx_.get(), type, r->shape);
        ggml_set_name(t, name.substr(0, GGML_MAX_NAME - 1).c_str());
        tensors_[name] = t;
        pending_.emplace_back(*r, t);
    }
    if (pending_.empty()) return;
    full_bytes_ = ggml_backend_alloc_ctx_tensors_from_buft_size(ctx_.get(), ggml_backend_get_default_buffer_type(backend));
    if (upload_now) upload();
    if (!keep_source_) pending_.clear();
}

void NetworkWeights::upload() {
    buffer_.reset(ggml_backend_alloc_ctx_tensors(ctx_.get(), backend_));
    if (!buffer_) throw Error("ERR_OUT_OF_MEMORY", "Could not allocate memory for the " + prefix_ + " weights");
    ggml_backend_buffer_set_usage(buffer_.get(), GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    advise_huge_pages(buffer_.get());
    try {
        check_sources_unchanged();
        std::vector<float> values;
        std::vector<uint8_t> converted;
        const bool host = ggml_backend_buffer_is_host(buffer_.get());
        for (auto & [record, tensor] : pending_) {
            if (record.file) record.file->prefetch_pages(record.offset, record.nbytes);
            if (record.type == tensor->type) {
                // Copied under a SIGBUS guard (io/guarded_read.h), straight into host buffers and
                // through host memory for device buffers, so a backend never reads the map itself.
                const std::string & path = record.file ? record.file->path() : prefix_;
                if (host) {
                    guarded_copy(tensor->data, record.data(), ggml_nbytes(tensor), path);
                } else {
                    converted.resize(ggml_nbytes(tensor));
                    guarded_copy(converted.data(), record.data(), converted.size(), path);
                    ggml_backend_tensor_set(tensor, converted.data(), 0, converted.size());
                }
            } else {
                values.resize(static_cast<size_t>(record.element_count()));
                read_tensor_f32(record, values.data());
                converted.resize(ggml_nbytes(tensor));
                // Handles f32/f16/bf16 too; storage_type_for only picks block types for whole-block rows.
                ggml_quantize_chunk(tensor->type, values.data(), converted.data(), 0, ggml_nrows(tensor), tensor->ne[0],
                                    nullptr);
                ggml_backend_tensor_set(tensor, converted.data(), 0, converted.size());
            }
            // The copy in the buffer is the one graphs use: dropping the file's pages keeps the host
            // from holding the weights twice while (and after) loading.
            if (record.file) record.file->release_pages(record.offset, record.nbytes);
        }
        check_sources_unchanged();  // written to while it was read: what was read is a mixture
    } catch (...) {
        release_buffer();
        throw;
    }
    resident_bytes_ = ggml_backend_buffer_get_size(buffer_.get());
}

void NetworkWeights::check_sources_unchanged() const {
    const MappedFile * last = nullptr;
    for (const auto & entry : pending_) {
        const MappedFile * file = entry.first.file.get();
        if (file == nullptr || file == last) continue;  // tensors of one file come together
        file->check_unchanged();
        last = file;
    }
}

void NetworkWeights::release_buffer() {
    buffer_.reset();
    resident_bytes_ = 0;
    // ggml allocates only tensors whose data is null: this lets upload() use the same context again.
    for (auto & entry : tensors_) {
        entry.second->data = nullptr;
        entry.second->buffer = nullptr;
    }
}

void NetworkWeights::release() {
    if (!keep_source_ || !buffer_) return;
    release_buffer();
}

void NetworkWeights::ensure_resident() {
    if (buffer_ || pending_.empty()) return;
    upload();
}

ggml_tensor * NetworkWeights::find(const std::string & name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : it->second;
}

ggml_tensor * NetworkWeights::get(const std::string & name) const {
    ggml_tensor * t = find(name);
    if (t == nullptr) throw Error("ERR_MODEL_INCOMPLETE", "The model has no tensor " + name);
    return t;
}

const std::vector<RuntimeAdapter> * NetworkWeights::adapters(const std::string & prefix) const {
    if (adapters_.empty()) return nullptr;
    auto it = adapters_.find(prefix);
    return it == adapters_.end() ? nullptr : &it->second;
}

void NetworkWeights::set_adapters(std::unordered_map<std::string, std::vector<RuntimeAdapter>> adapters, size_t bytes) {
    adapters_ = std::move(adapters);
    adapter_bytes_ = bytes;
}

std::vector<std::string> NetworkWeights::names() const {
    std::vector<std::string> result;
    for (const auto & entry : tensors_) result.push_back(entry.first);
    std::sort(result.begin(), result.end());
    return result;
}

} // namespace sd
