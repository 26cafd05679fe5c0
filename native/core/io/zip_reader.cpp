#include "io/zip_reader.h"

#include <algorithm>

#include "sdcore/error.h"

namespace sd {

namespace {

constexpr uint32_t eocd_signature = 0x06054b50;
constexpr uint32_t zip64_locator_signature = 0x07064b50;
constexpr uint32_t zip64_eocd_signature = 0x06064b50;
constexpr uint32_t central_signature = 0x02014b50;
constexpr uint32_t local_signature = 0x04034b50;
constexpr uint64_t eocd_size = 22;
constexpr uint64_t central_size = 46;
constexpr uint64_t local_size = 30;

// Little-endian reads that check every byte they touch against the file's end.
class Bytes {
public:
    explicit Bytes(const MappedFile & file) : file_(file) {}

    [[noreturn]] void fail(const std::string & message) const {
        throw Error("ERR_MODEL_FORMAT", "Invalid checkpoint (ZIP) file " + file_.path() + ": " + message, file_.path());
    }
    void need(uint64_t offset, uint64_t size, const char * what) const {
        if (offset > file_.size() || size > file_.size() - offset) fail(std::string(what) + " lies beyond the end of the file (truncated file?)");
    }
    uint64_t le(uint64_t offset, int size) const {
        need(offset, static_cast<uint64_t>(size), "a header");
        uint64_t value = 0;
        for (int i = size - 1; i >= 0; --i) value = (value << 8) | file_.data()[offset + static_cast<uint64_t>(i)];
        return value;
    }
    uint16_t u16(uint64_t offset) const { return static_cast<uint16_t>(le(offset, 2)); }
    uint32_t u32(uint64_t offset) const { return static_cast<uint32_t>(le(offset, 4)); }
    uint64_t u64(uint64_t offset) const { return le(offset, 8); }
    uint64_t size() const { return file_.size(); }
    const uint8_t * data() const { return file_.data(); }

private:
    const MappedFile & file_;
};

// The End Of Central Directory record is in the last 22 + 65535 bytes (it may carry a comment).
uint64_t find_eocd(const Bytes & bytes) {
    if (bytes.size() < eocd_size) bytes.fail("the file is too short to be a ZIP archive");
    const uint64_t lowest = bytes.size() > eocd_size + 0xFFFF ? bytes.size() - eocd_size - 0xFFFF : 0;
    for (uint64_t pos = bytes.size() - eocd_size + 1; pos-- > lowest;) {
        if (bytes.u32(pos) == eocd_signature && pos + eocd_size + bytes.u16(pos + 20) == bytes.size()) return pos;
    }
    bytes.fail("no end of central directory record (truncated file?)");
}

struct Directory {
    uint64_t offset = 0;
    uint64_t size = 0;
    uint64_t entries = 0;
};

Directory read_directory_location(const Bytes & bytes) {
    const uint64_t eocd = find_eocd(bytes);
    Directory dir;
    dir.entries = bytes.u16(eocd + 10);
    dir.size = bytes.u32(eocd + 12);
    dir.offset = bytes.u32(eocd + 16);
    const bool needs_zip64 = dir.entries == 0xFFFF || dir.size == 0xFFFFFFFF || dir.offset == 0xFFFFFFFF;
    if (eocd >= 20 && bytes.u32(eocd - 20) == zip64_locator_signature) {
        const uint64_t record = bytes.u64(eocd - 20 + 8);
        if (bytes.u32(record) != zip64_eocd_signature) bytes.fail("the ZIP64 end of central directory record is missing");
        dir.entries = bytes.u64(record + 32);
        dir.size = bytes.u64(record + 40);
        dir.offset = bytes.u64(record + 48);
    } else if (needs_zip64) {
        bytes.fail("the ZIP64 end of central directory locator is missing");
    }
    bytes.need(dir.offset, dir.size, "the central directory");
    return dir;
}

// Applies the ZIP64 extra field (id 1) to the values the central header marked as 0xFFFFFFFF.
void apply_zip64_extra(const Bytes & bytes, uint64_t extra, uint64_t extra_end, uint64_t & uncompressed,
                       uint64_t & compressed, uint64_t & local_offset) {
    while (extra + 4 <= extra_end) {
        const uint16_t id = bytes.u16(extra);
        const uint16_t length = bytes.u16(extra + 2);
        const uint64_t field = extra + 4;
        if (field + length > extra_end) bytes.fail("a central directory extra field overruns its header");
        if (id == 1) {
            uint64_t pos = field;
            for (uint64_t * value : {&uncompressed, &compressed, &local_offset}) {
                if (*value != 0xFFFFFFFF) continue;
                if (pos + 8 > field + length) bytes.fail("a ZIP64 extra field is too short");
                *value = bytes.u64(pos);
                pos += 8;
            }
            return;
        }
        extra = field + length;
    }
}

} // namespace

std::vector<ZipEntry> read_zip_entries(const MappedFile & file) {
    const Bytes bytes(file);
    const Directory dir = read_directory_location(bytes);
    std::vector<ZipEntry> entries;
    uint64_t pos = dir.offset;
    const uint64_t end = dir.offset + dir.size;
    for (uint64_t i = 0; i < dir.entries; ++i) {
        if (pos + central_size > end || bytes.u32(pos) != central_signature) bytes.fail("the central directory is malformed");
        const uint16_t flags = bytes.u16(pos + 8);
        ZipEntry entry;
        entry.method = bytes.u16(pos + 10);
        uint64_t compressed = bytes.u32(pos + 20);
        uint64_t uncompressed = bytes.u32(pos + 24);
        const uint16_t name_length = bytes.u16(pos + 28);
        const uint16_t extra_length = bytes.u16(pos + 30);
        const uint16_t comment_length = bytes.u16(pos + 32);
        uint64_t local = bytes.u32(pos + 42);
        const uint64_t name_at = pos + central_size;
        const uint64_t next = name_at + name_length + extra_length + comment_length;
        if (next > end) bytes.fail("a central directory entry overruns the directory");
        entry.name.assign(reinterpret_cast<const char *>(bytes.data() + name_at), name_length);
        apply_zip64_extra(bytes, name_at + name_length, name_at + name_length + extra_length, uncompressed, compressed, local);
        if (flags & 1) bytes.fail("entry \"" + entry.name + "\" is encrypted");
        if (entry.method == 0 && compressed != uncompressed) bytes.fail("stored entry \"" + entry.name + "\" has inconsistent sizes");

        // The data follows the local header, whose name and extra lengths may differ from the
        // central ones (torch pads its local extra fields to align the data).
        if (bytes.u32(local) != local_signature) bytes.fail("entry \"" + entry.name + "\" has no local header");
        const uint64_t data = local + local_size + bytes.u16(local + 26) + bytes.u16(local + 28);
        bytes.need(data, compressed, ("the data of entry \"" + entry.name + "\"").c_str());
        entry.offset = data;
        entry.size = compressed;
        entries.push_back(std::move(entry));
        pos = next;
    }
    return entries;
}

} // namespace sd
