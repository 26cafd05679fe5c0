// GGUF: ggml's own parser (gguf.cpp, built here with the same sanitizers) under our bounds, the
// metadata turned to text, the tensors' places checked and their bytes read as float32
// (quantized types included).
#include "fuzz_input.h"
#include "io/container_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    return fuzz::expect_documented_errors([&] { fuzz::read_tensors(sd::read_gguf(fuzz::input_file(data, size))); });
}
