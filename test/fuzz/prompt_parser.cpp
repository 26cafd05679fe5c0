// A1111's prompt syntax: attention brackets and weights, escapes, BREAK; then the 77-token chunks
// in both modes (A1111's chunks with comma backtracking, diffusers' truncation), with SD 2.x's pad
// id and a textual-inversion embedding whose name appears in the seeds.
#include <string_view>

#include "fixtures.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const sd::ClipTokenizer & tokenizer = fuzz::clip_tokenizer();
    const std::string_view prompt(reinterpret_cast<const char *>(data), size);
    return fuzz::expect_documented_errors([&] {
        sd::parse_prompt_attention(prompt);
        sd::tokenize_prompt(tokenizer, prompt);

        sd::PromptOptions options;
        options.mode = sd::PromptMode::truncate;
        options.pad_id = 0;
        options.embeddings.push_back({tokenizer.encode_content("cattoy"), sd::ClipTokenizer::kVocabSize, 3});
        sd::tokenize_prompt(tokenizer, prompt, options);
        options.mode = sd::PromptMode::chunks;
        options.weighting = false;
        sd::tokenize_prompt(tokenizer, prompt, options);
    });
}
