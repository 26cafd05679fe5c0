#pragma once
// Reads from a file's memory map that survive the file shrinking underneath. When another
// process truncates a mapped file, touching a page past its new end raises SIGBUS, whose
// default action kills the host process (someone else's Node server). Inside these calls a
// SIGBUS instead unwinds to the caller as sd::Error ERR_FILE_READ naming the file.
#include <cstddef>
#include <cstdint>
#include <string>

namespace sd {

// memcpy from a mapped region. Throws ERR_FILE_READ if the source pages are gone.
void guarded_copy(void * dst, const void * mapped_src, size_t bytes, const std::string & path);

// Runs `convert(context)`, which reads mapped memory and must own no resources (plain loops
// over pointers: no allocation, no locks), since a SIGBUS leaves it without unwinding.
void guarded_call(void (*convert)(void * context), void * context, const std::string & path);

} // namespace sd
