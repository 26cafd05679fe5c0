// Textual-inversion embeddings as lib/embeddings.ts reads them through the core: the model-file
// reader choosing the container by its first bytes (what inspectModelFile calls), then the one
// tensor that holds the vectors read as float32 (readModelTensor): A1111's string_to_param.*,
// emb_params, or a file's single tensor.
#include <string>

#include "fuzz_input.h"
#include "io/model_file_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    return fuzz::expect_documented_errors([&] {
        const sd::TensorIndex index = sd::read_model_file(fuzz::input_file(data, size));
        const sd::TensorRecord * vectors = index.find("emb_params");
        for (const sd::TensorRecord & record : index.tensors) {
            if (record.name.rfind("string_to_param.", 0) == 0) vectors = &record;
        }
        if (!vectors && index.tensors.size() == 1) vectors = &index.tensors[0];
        if (!vectors) return;
        sd::TensorIndex one;
        one.add(*vectors);
        fuzz::read_tensors(one);
    });
}
