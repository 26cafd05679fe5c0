#pragma once
// What every fuzz target shares: the input as a model file the readers can take, and the errors a
// malformed input may end in. Anything else (a crash, a sanitizer report, another exception
// escaping the target) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "io/mapped_file.h"
#include "io/tensor_index.h"
#include "sdcore/error.h"

namespace fuzz {

// The input bytes as a file: libFuzzer's buffer is exactly their size, so AddressSanitizer sees a
// read one byte past the end (a real mapping would hide it up to the page's end).
inline std::shared_ptr<const sd::MappedFile> input_file(const uint8_t * data, size_t size) {
    return sd::MappedFile::view("fuzz-input", data, size);
}

// Reads every tensor of an index as float32, as loading and embeddings do, up to a bound that
// keeps one run fast (a header may claim gigabytes that the file then has to hold).
inline void read_tensors(const sd::TensorIndex & index) {
    for (const sd::TensorRecord & record : index.tensors) {
        const int64_t count = record.element_count();
        if (count < 0 || count > (int64_t(1) << 20)) continue;
        std::unique_ptr<float[]> out(new float[static_cast<size_t>(count) + 1]);
        try {
            sd::read_tensor_f32(record, out.get());
        } catch (const sd::Error &) {
        }
    }
}

// Runs `body`; the errors the core documents for bad input (sd::Error with a code, and its
// sd::RangeError) end the run quietly, or on stderr with SDNODE_FUZZ_VERBOSE=1 (to see what a
// seed or a found input does).
template <typename Body>
int expect_documented_errors(Body body) {
    static const bool verbose = std::getenv("SDNODE_FUZZ_VERBOSE") != nullptr;
    try {
        body();
        if (verbose) std::fprintf(stderr, "accepted\n");
    } catch (const sd::Error & e) {
        if (verbose) std::fprintf(stderr, "%s: %s\n", e.code().c_str(), e.what());
    }
    return 0;
}

} // namespace fuzz
