#pragma once
// Prompts as the AUTOMATIC1111 web UI reads them: attention syntax → weighted text, then token
// ids and per-token weights in chunks of 77 for the CLIP text encoder.
//
// Attention syntax (A1111's parse_prompt_attention):
//   (text)        weight × 1.1 (nested: ((text)) × 1.21, …)
//   (text:1.3)    weight × 1.3 (any number Python's float() reads: 1, .5, 1., +2, -1, and digits of
//                 any script, ١.٥ = 1.5)
//   [text]        weight ÷ 1.1 (as × (1 / 1.1), to the last bit)
//   \( \) \[ \] \\ the character itself; a backslash before anything else disappears
//   BREAK         (a whole word, upper case) ends the current chunk
// Unbalanced brackets: a closing one with nothing open is text; one left open applies to the
// end of the prompt. Neighbouring pieces of equal weight are merged.
//
// Not interpreted (kept as text, as A1111's tokenizer path sees them): prompt editing
// [a:b:0.5], alternation [a|b], AND, <lora:…>, textual-inversion embedding names.
#include <string>
#include <string_view>
#include <vector>

#include "text/clip_tokenizer.h"

namespace sd {

struct WeightedText {
    std::string text;
    double weight = 1.0;
};

// A BREAK comes out as {"BREAK", -1}, A1111's marker. Like any piece it is multiplied by the
// brackets around it, and only an exact -1 ends a chunk: "(a BREAK b)" tokenizes "BREAK" as a
// word of weight -1.1, as A1111 does.
std::vector<WeightedText> parse_prompt_attention(std::string_view prompt);
bool is_break(const WeightedText & piece);

enum class PromptMode {
    chunks,    // A1111: as many 77-token chunks as the prompt needs
    truncate,  // diffusers: one chunk, tokens past the 75th dropped
};

struct PromptOptions {
    PromptMode mode = PromptMode::chunks;
    bool weighting = true;  // false: the prompt is literal text of weight 1 (diffusers; A1111's emphasis "None")
    int pad_id = ClipTokenizer::kEosId;  // SD 1.x pads with <|endoftext|>, SD 2.x with "!" (0)
    int comma_backtrack = 20;  // A1111's comma_padding_backtrack; 0 turns it off
};

// 77 ids (bos, 75 tokens or padding, eos) and their weights (1 for bos, eos and padding).
struct PromptChunk {
    std::vector<int> ids;
    std::vector<double> weights;
};

// Chunks (A1111's tokenize_line): each piece of the parsed prompt is tokenized on its own and
// the tokens fill chunks of 75. When a chunk is full and the last comma in it is at most
// comma_backtrack tokens back, what follows that comma moves to the next chunk. BREAK starts a
// new chunk, even an empty one. Chunks are padded with <|endoftext|>; with another pad id,
// everything after a chunk's first <|endoftext|> becomes the pad id (A1111's SD 2.x rule).
// Truncate: the tokens of all pieces in order (BREAK ignored), the first 75 kept, bos + tokens
// + eos + pad ids (diffusers' padding="max_length", truncation=True).
// Throws sd::RangeError for a pad id outside the vocabulary.
std::vector<PromptChunk> tokenize_prompt(const ClipTokenizer & tokenizer, std::string_view prompt,
                                         const PromptOptions & options = {});

} // namespace sd
