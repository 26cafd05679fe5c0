// PyTorch checkpoints (torch.save's ZIP): the central directory (ZIP64 included), data.pkl through
// the restricted unpickler, storages and tensors, then the tensors' bytes.
#include "fuzz_input.h"
#include "io/container_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    return fuzz::expect_documented_errors([&] { fuzz::read_tensors(sd::read_checkpoint(fuzz::input_file(data, size))); });
}
