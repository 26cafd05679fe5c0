#include "io/mapped_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sdcore/error.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#define NOMINMAX
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace sd {

// An empty file cannot be mapped; readers still get a valid (never dereferenced) pointer.
static const uint8_t empty_file_byte = 0;

std::shared_ptr<const MappedFile> MappedFile::view(const std::string & name, const uint8_t * data, uint64_t size) {
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->path_ = name;
    file->data_ = size == 0 ? &empty_file_byte : data;
    file->size_ = size;
    file->borrowed_ = true;
    return file;
}

#ifdef _WIN32

static std::wstring widen(const std::string & utf8) {
    if (utf8.empty()) return std::wstring();
    int n = MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
    std::wstring wide(static_cast<size_t>(n), L'\0');
    MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), wide.data(), n);
    return wide;
}

static std::string windows_message(DWORD code) {
    char buffer[256] = {0};
    FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, code, 0, buffer,
                   sizeof(buffer), nullptr);
    std::string message(buffer);
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r' || message.back() == '.')) message.pop_back();
    return message;
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::string & path) {
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->path_ = path;
    HANDLE handle = CreateFileW(widen(path).c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                                FILE_ATTRIBUTE_NORMAL, nullptr);
    if (handle == INVALID_HANDLE_VALUE) {
        DWORD code = GetLastError();
        bool missing = code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND;
        throw Error(missing ? "ERR_FILE_NOT_FOUND" : "ERR_FILE_READ",
                    "Cannot open " + path + ": " + windows_message(code), path);
    }
    file->file_handle_ = handle;
    LARGE_INTEGER size;
    if (!GetFileSizeEx(handle, &size)) {
        throw Error("ERR_FILE_READ", "Cannot read the size of " + path + ": " + windows_message(GetLastError()), path);
    }
    file->size_ = static_cast<uint64_t>(size.QuadPart);
    if (file->size_ == 0) {
        file->data_ = &empty_file_byte;
        return file;
    }
    HANDLE mapping = CreateFileMappingW(handle, nullptr, PAGE_READONLY, 0, 0, nullptr);
    if (mapping == nullptr) {
        throw Error("ERR_FILE_READ", "Cannot map " + path + ": " + windows_message(GetLastError()), path);
    }
    file->mapping_handle_ = mapping;
    void * view = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    if (view == nullptr) {
        throw Error("ERR_FILE_READ", "Cannot map " + path + ": " + windows_message(GetLastError()), path);
    }
    file->data_ = static_cast<const uint8_t *>(view);
    return file;
}

// Windows keeps unreferenced mapped pages in the standby list, outside the working set's growth
// that matters here; there is no cheap per-range equivalent of MADV_DONTNEED for file views.
void MappedFile::release_pages(uint64_t, uint64_t) const {}
void MappedFile::check_unchanged() const {}
void MappedFile::prefetch_pages(uint64_t, uint64_t) const {}

MappedFile::~MappedFile() {
    if (data_ != nullptr && data_ != &empty_file_byte && !borrowed_) UnmapViewOfFile(data_);
    if (mapping_handle_ != nullptr) CloseHandle(mapping_handle_);
    if (file_handle_ != nullptr) CloseHandle(file_handle_);
}

#else

static int64_t modification_ns(const struct stat & info) {
#if defined(__APPLE__)
    return static_cast<int64_t>(info.st_mtimespec.tv_sec) * 1000000000 + info.st_mtimespec.tv_nsec;
#else
    return static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
#endif
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::string & path) {
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->path_ = path;
    // O_NONBLOCK: opening a FIFO (or a device) for reading would otherwise wait for a writer
    // for ever, holding a worker thread and then process exit; the type check below rejects it.
    // It changes nothing for a regular file or its mapping.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int code = errno;
        bool missing = code == ENOENT || code == ENOTDIR;
        throw Error(missing ? "ERR_FILE_NOT_FOUND" : "ERR_FILE_READ",
                    "Cannot open " + path + ": " + std::strerror(code), path);
    }
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int code = errno;
        ::close(fd);
        throw Error("ERR_FILE_READ", "Cannot read the size of " + path + ": " + std::strerror(code), path);
    }
    // open() succeeds on a directory; mmap would then fail with a less helpful message.
    if (!S_ISREG(info.st_mode)) {
        ::close(fd);
        throw Error("ERR_FILE_READ", "Cannot read " + path + ": not a regular file", path);
    }
    file->fd_ = fd;  // closed by the destructor from here on
    file->size_ = static_cast<uint64_t>(info.st_size);
    file->mtime_ns_ = modification_ns(info);
    if (file->size_ == 0) {
        file->data_ = &empty_file_byte;
        return file;
    }
    void * map = mmap(nullptr, static_cast<size_t>(file->size_), PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        int code = errno;
        file->size_ = 0;
        throw Error("ERR_FILE_READ", "Cannot map " + path + ": " + std::strerror(code), path);
    }
    file->data_ = static_cast<const uint8_t *>(map);
    return file;
}

void MappedFile::check_unchanged() const {
    struct stat info;
    if (fd_ < 0 || fstat(fd_, &info) != 0) return;
    const uint64_t size = static_cast<uint64_t>(info.st_size);
    if (size == size_ && modification_ns(info) == mtime_ns_) return;
    const std::string what = size != size_ ? "its size went from " + std::to_string(size_) + " to " + std::to_string(size) + " bytes"
                                           : "it was written to";
    throw Error("ERR_FILE_CHANGED", path_ + " changed on disk since it was loaded (" + what +
                                        "); load the model again", path_);
}

void MappedFile::release_pages(uint64_t offset, uint64_t bytes) const {
    if (borrowed_ || data_ == nullptr || data_ == &empty_file_byte || bytes == 0 || offset >= size_) return;
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t begin = offset / page * page;
    const uint64_t end = std::min<uint64_t>(size_, offset + bytes);
    // The mapping is shared and read-only: dropped pages come back from the file unchanged.
    madvise(const_cast<uint8_t *>(data_) + begin, static_cast<size_t>(end - begin), MADV_DONTNEED);
}

void MappedFile::prefetch_pages(uint64_t offset, uint64_t bytes) const {
#if defined(__linux__)
    constexpr int kPopulateRead = 22;  // MADV_POPULATE_READ, Linux 5.14; older kernels say EINVAL
    if (borrowed_ || data_ == nullptr || data_ == &empty_file_byte || bytes == 0 || offset >= size_) return;
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t begin = offset / page * page;
    const uint64_t end = std::min<uint64_t>(size_, offset + bytes);
    madvise(const_cast<uint8_t *>(data_) + begin, static_cast<size_t>(end - begin), kPopulateRead);
#else
    (void)offset;
    (void)bytes;
#endif
}

MappedFile::~MappedFile() {
    if (data_ != nullptr && data_ != &empty_file_byte && !borrowed_) munmap(const_cast<uint8_t *>(data_), static_cast<size_t>(size_));
    if (fd_ >= 0) ::close(fd_);
}

#endif

} // namespace sd
