// CLIP's BPE tokenizer on any bytes (invalid UTF-8 included): encode, the token strings, decode
// of what it encoded and of arbitrary ids taken from the input. An input that starts like a
// merges file ("#version") is also given to the constructor, as a diffusers tokenizer/merges.txt
// would be.
#include <cstring>
#include <string_view>
#include <vector>

#include "fixtures.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const sd::ClipTokenizer & tokenizer = fuzz::clip_tokenizer();
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    return fuzz::expect_documented_errors([&] {
        const std::vector<int> ids = tokenizer.encode(text);
        tokenizer.tokenize(text);
        tokenizer.decode(ids);
        tokenizer.decode(ids, true);
        tokenizer.token_id(text);

        std::vector<int> raw(size / 2);
        for (size_t i = 0; i < raw.size(); ++i) raw[i] = (data[2 * i] | data[2 * i + 1] << 8) % (sd::ClipTokenizer::kVocabSize + 16);
        tokenizer.decode(raw);

        if (size >= 8 && std::memcmp(data, "#version", 8) == 0) sd::ClipTokenizer{text};
    });
}
