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
void MappedFile::prefetch_pages(uint64_t, uint64_t) const {}

MappedFile::~MappedFile() {
    if (data_ != nullptr && data_ != &empty_file_byte) UnmapViewOfFile(data_);
    if (mapping_handle_ != nullptr) CloseHandle(mapping_handle_);
    if (file_handle_ != nullptr) CloseHandle(file_handle_);
}

#else

std::shared_ptr<const MappedFile> MappedFile::open(const std::string & path) {
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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
    file->size_ = static_cast<uint64_t>(info.st_size);
    if (file->size_ == 0) {
        ::close(fd);
        file->data_ = &empty_file_byte;
        return file;
    }
    void * map = mmap(nullptr, static_cast<size_t>(file->size_), PROT_READ, MAP_SHARED, fd, 0);
    int code = errno;
    ::close(fd);  // the mapping keeps the file open
    if (map == MAP_FAILED) {
        file->size_ = 0;
        throw Error("ERR_FILE_READ", "Cannot map " + path + ": " + std::strerror(code), path);
    }
    file->data_ = static_cast<const uint8_t *>(map);
    return file;
}

void MappedFile::release_pages(uint64_t offset, uint64_t bytes) const {
    if (data_ == nullptr || data_ == &empty_file_byte || bytes == 0 || offset >= size_) return;
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t begin = offset / page * page;
    const uint64_t end = std::min<uint64_t>(size_, offset + bytes);
    // The mapping is shared and read-only: dropped pages come back from the file unchanged.
    madvise(const_cast<uint8_t *>(data_) + begin, static_cast<size_t>(end - begin), MADV_DONTNEED);
}

void MappedFile::prefetch_pages(uint64_t offset, uint64_t bytes) const {
#if defined(__linux__)
    constexpr int kPopulateRead = 22;  // MADV_POPULATE_READ, Linux 5.14; older kernels say EINVAL
    if (data_ == nullptr || data_ == &empty_file_byte || bytes == 0 || offset >= size_) return;
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
    if (data_ != nullptr && data_ != &empty_file_byte) munmap(const_cast<uint8_t *>(data_), static_cast<size_t>(size_));
}

#endif

} // namespace sd
