// safetensors: the 8-byte header length, the JSON header (dtypes, shapes, data_offsets,
// __metadata__) and the tensors' bytes, read as loading reads them.
#include "fuzz_input.h"
#include "io/container_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    return fuzz::expect_documented_errors([&] { fuzz::read_tensors(sd::read_safetensors(fuzz::input_file(data, size))); });
}
