#include "sdcore/model_files.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#ifdef _WIN32
#include <process.h>
#else
#include <unistd.h>
#endif

#include "gguf.h"
#include "io/tensor_index.h"
#include "io/weight_types.h"
#include "runtime/ggml_handles.h"
#include "sdcore/error.h"

namespace sd {

namespace {

struct GgufDeleter { void operator()(gguf_context * ctx) const { gguf_free(ctx); } };
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;

long current_process_id() {
#ifdef _WIN32
    return static_cast<long>(_getpid());
#else
    return static_cast<long>(getpid());
#endif
}

constexpr int64_t max_write_elements = int64_t(1) << 40;

// The file being written. It goes to a temporary name beside the destination and takes the
// destination's name only once complete (rename is atomic within a directory), so that:
// - a failed write (disk full, a bad source) leaves an existing file at the path untouched and
//   nothing new behind;
// - writing over a file that is being read (the conversion's own input, a model another
//   StableDiffusion maps with `offload`) never truncates it under the reader: the reader keeps
//   the old file's data until it closes it.
class OutputFile {
public:
    explicit OutputFile(const std::string & path) : path_(path), temporary_(temporary_name(path)) {
        file_ = ggml_fopen(temporary_.c_str(), "wb");
        if (file_ == nullptr) fail();
    }
    ~OutputFile() {
        if (file_ != nullptr) std::fclose(file_);
        if (!done_) {
            std::error_code ignored;
            std::filesystem::remove(std::filesystem::u8path(temporary_), ignored);
        }
    }
    FILE * get() const { return file_; }
    void write(const void * data, size_t size) {
        if (size > 0 && std::fwrite(data, 1, size, file_) != size) fail();
    }
    void close() {
        int result = std::fclose(file_);
        file_ = nullptr;
        if (result != 0) fail();
        std::error_code error;
        std::filesystem::rename(std::filesystem::u8path(temporary_), std::filesystem::u8path(path_), error);
        if (error) throw Error("ERR_FILE_WRITE", "Cannot write " + path_ + ": " + error.message(), path_);
        done_ = true;
    }
    [[noreturn]] void fail() const {
        throw Error("ERR_FILE_WRITE", "Cannot write " + path_ + ": " + std::strerror(errno), path_);
    }

private:
    // Unique per process and per write; a leftover from a killed process is recognisable by it.
    static std::string temporary_name(const std::string & path) {
        static std::atomic<unsigned> counter{0};
        return path + ".sdnode-partial-" + std::to_string(current_process_id()) + "-" + std::to_string(counter++);
    }

    std::string path_;
    std::string temporary_;
    FILE * file_ = nullptr;
    bool done_ = false;
};

void check_source(const GgufTensorSource & source, std::set<std::string> & names) {
    const std::string & name = source.name;
    if (name.empty() || name.size() >= GGML_MAX_NAME) {
        throw RangeError("GGUF tensor names must have 1 to " + std::to_string(GGML_MAX_NAME - 1) +
                         " bytes, but \"" + name + "\" has " + std::to_string(name.size()));
    }
    if (name.find('\0') != std::string::npos) throw RangeError("GGUF tensor name \"" + name + "\" contains a NUL byte");
    if (!names.insert(name).second) throw RangeError("GGUF tensor name \"" + name + "\" is given twice");
    if (source.shape.empty() || source.shape.size() > GGML_MAX_DIMS) {
        throw RangeError("GGUF tensor \"" + name + "\" must have 1 to " + std::to_string(GGML_MAX_DIMS) + " dimensions");
    }
    for (int64_t dim : source.shape) {
        if (dim < 1) throw RangeError("GGUF tensor \"" + name + "\" has a dimension below 1");
    }
    const int64_t count = checked_element_count(source.shape, sizeof(float));
    if (count < 0 || count > max_write_elements) throw RangeError("GGUF tensor \"" + name + "\" is too large");
    to_ggml_type(source.type);  // throws sd::RangeError for a value that is no WeightType
    if (!source.read) throw RangeError("GGUF tensor \"" + name + "\" has no data source");
}

} // namespace

GgufWriteReport write_gguf(const std::string & path, const std::vector<GgufTensorSource> & tensors,
                           const std::map<std::string, std::string> & metadata) {
    // Everything ggml would assert on is checked here, before any ggml call.
    std::set<std::string> names;
    for (const GgufTensorSource & source : tensors) check_source(source, names);
    for (const auto & [key, value] : metadata) {
        if (key.empty() || key.find('\0') != std::string::npos) throw RangeError("GGUF metadata keys must be non-empty text");
        if (key == GGUF_KEY_GENERAL_ALIGNMENT) throw RangeError("GGUF metadata key " + key + " is reserved");
        if (value.find('\0') != std::string::npos) throw RangeError("GGUF metadata \"" + key + "\" contains a NUL byte");
    }

    GgufWriteReport report;
    GgufPtr gguf(gguf_init_empty());
    for (const auto & [key, value] : metadata) gguf_set_val_str(gguf.get(), key.c_str(), value.c_str());

    ggml_init_params params = {(tensors.size() + 1) * ggml_tensor_overhead(), nullptr, /*no_alloc =*/true};
    GgmlContextPtr ctx(ggml_init(params));
    if (!ctx) throw std::bad_alloc();
    std::vector<ggml_type> types;
    for (const GgufTensorSource & source : tensors) {
        int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
        const int dims = static_cast<int>(source.shape.size());
        for (int d = 0; d < dims; ++d) ne[d] = source.shape[dims - 1 - d];
        ggml_type type = to_ggml_type(source.type);
        if (ne[0] % ggml_blck_size(type) != 0) {
            type = GGML_TYPE_F16;
            report.kept_f16.push_back(source.name);
        }
        types.push_back(type);
        ggml_tensor * tensor = ggml_new_tensor(ctx.get(), type, dims, ne);
        ggml_set_name(tensor, source.name.c_str());
        gguf_add_tensor(gguf.get(), tensor);
    }

    OutputFile out(path);
    if (!gguf_write_to_file_ptr(gguf.get(), out.get(), /*only_meta =*/true)) out.fail();

    const size_t alignment = gguf_get_alignment(gguf.get());
    const std::vector<uint8_t> padding(alignment, 0);
    std::vector<float> values;
    std::vector<uint8_t> converted;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const GgufTensorSource & source = tensors[i];
        const int64_t count = checked_element_count(source.shape, 1);
        const int64_t row = source.shape.back();
        values.assign(static_cast<size_t>(count), 0.0f);
        source.read(values.data());
        converted.resize(ggml_row_size(types[i], row) * static_cast<size_t>(count / row));
        ggml_quantize_chunk(types[i], values.data(), converted.data(), 0, count / row, row, nullptr);
        out.write(converted.data(), converted.size());
        out.write(padding.data(), GGML_PAD(converted.size(), alignment) - converted.size());
    }
    out.close();
    return report;
}

} // namespace sd
