// The restricted unpickler alone, on a bare data.pkl: the checkpoint target reaches it only
// through a valid ZIP, which random mutations rarely keep.
#include "fuzz_input.h"
#include "io/pickle_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    return fuzz::expect_documented_errors([&] {
        sd::pickle::Unpickler unpickler(data, size, "fuzz-input");
        unpickler.load();
    });
}
