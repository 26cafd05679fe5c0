#pragma once
// The central directory of a ZIP archive (with the ZIP64 extensions), enough to find the entries
// of a PyTorch checkpoint: torch.save stores them uncompressed, so they are used in place from
// the mapped file.
#include <cstdint>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace sd {

struct ZipEntry {
    std::string name;
    uint16_t method = 0;   // 0: stored; anything else is compressed and not readable in place
    uint64_t offset = 0;   // byte offset of the entry's data in the file
    uint64_t size = 0;     // bytes of data in the file (compressed size)
};

// Throws sd::Error ERR_MODEL_FORMAT (with the file's path) if the directory is malformed or
// points outside the file.
std::vector<ZipEntry> read_zip_entries(const MappedFile & file);

} // namespace sd
