#pragma once
// A read-only memory map of a whole file. Weights are used in place from the map wherever the
// backend allows, so a model is never read into memory twice.
#include <cstdint>
#include <memory>
#include <string>

namespace sd {

class MappedFile {
public:
    // Throws sd::Error ERR_FILE_NOT_FOUND or ERR_FILE_READ (with the path).
    static std::shared_ptr<const MappedFile> open(const std::string & path);
    // Bytes already in memory, read through the same readers as a mapped file: nothing is copied
    // or owned (the caller keeps `data` alive as long as the readers' results), `name` stands for
    // the path in messages, and the page hints and check_unchanged do nothing. The fuzz targets
    // (test/fuzz/) feed the readers this way, so that the sanitizer sees every byte past the end.
    static std::shared_ptr<const MappedFile> view(const std::string & name, const uint8_t * data, uint64_t size);
    ~MappedFile();

    MappedFile(const MappedFile &) = delete;
    MappedFile & operator=(const MappedFile &) = delete;

    const uint8_t * data() const { return data_; }
    uint64_t size() const { return size_; }
    const std::string & path() const { return path_; }

    // Tells the OS that the bytes [offset, offset + bytes) are not needed for now: their pages
    // leave this process's resident set (they are read from the file again if touched). Whole
    // pages around the range go too; that only costs a re-read. A no-op where unsupported.
    void release_pages(uint64_t offset, uint64_t bytes) const;

    // Throws sd::Error ERR_FILE_CHANGED when the file's size or modification time is no longer
    // what it was when mapped: written to in place, its mapped bytes are no longer the model that
    // was loaded. (A file replaced by a rename keeps the old contents mapped; nothing changes.)
    // A no-op on Windows, which refuses writes to a mapped file.
    void check_unchanged() const;

    // Maps the pages of [offset, offset + bytes) into the process in one call (Linux 5.14+
    // MADV_POPULATE_READ) rather than one page fault per 4 KB while they are read. A hint: a no-op
    // where unsupported.
    void prefetch_pages(uint64_t offset, uint64_t bytes) const;

private:
    MappedFile() = default;
    std::string path_;
    const uint8_t * data_ = nullptr;
    uint64_t size_ = 0;
    bool borrowed_ = false;  // view(): not a mapping of ours
#ifdef _WIN32
    void * file_handle_ = nullptr;
    void * mapping_handle_ = nullptr;
#else
    int fd_ = -1;  // kept open to fstat the same file later (the path may name another by then)
    int64_t mtime_ns_ = 0;
#endif
};

} // namespace sd
