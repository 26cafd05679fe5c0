#pragma once
// Text: the CLIP tokenizer and A1111's prompt syntax.
//
// ---- the tokenizer (text/clip_tokenizer.cpp) ----
// CLIP's byte-level BPE tokenizer, giving the same ids as transformers' CLIPTokenizer (which
// diffusers loads for SD 1.x and 2.x).
//
// The vocabulary is built from the merges list alone, as OpenAI CLIP does: the 256 byte symbols,
// the same with "</w>" (end of word), one token per merge (48894 of them, in file order, which
// is also their rank) and <|startoftext|> (49406), <|endoftext|> (49407): 49408 ids.
//
// The caller passes the merges as text: OpenAI's bpe_simple_vocab_16e6.txt (its first line is a
// header) or a diffusers tokenizer/merges.txt ("#version: 0.2" header). The package ships the
// former gzipped in native/core/data; the JS side gunzips it, a C++ user reads and gunzips it
// themselves (the core does not link zlib).
//
// Encoding, as transformers 5 does it (no ftfy, no HTML unescaping):
//   1. "<|endoftext|>" written in the text (exact case) becomes 49407;
//   2. each remaining part: NFC, every run of White_Space → one space, per-character lower case;
//   3. "<|startoftext|>" in that normalized text becomes 49406 (so it is found in any case);
//   4. the rest is split into pieces: 's 't 're 've 'm 'll 'd, runs of letters, single numbers,
//      runs of anything else but white space (white space is dropped);
//   5. each piece: its UTF-8 bytes as byte symbols, "</w>" on the last, BPE by merge rank.
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sd {

class ClipTokenizer {
public:
    static constexpr int kVocabSize = 49408;
    static constexpr int kMergeCount = 48894;
    static constexpr int kBosId = 49406;  // <|startoftext|>
    static constexpr int kEosId = 49407;  // <|endoftext|>
    static constexpr int kCommaId = 267;  // ",</w>"

    // Throws sd::Error ERR_MODEL_FORMAT when the text is not a CLIP merges list.
    explicit ClipTokenizer(std::string_view merges_text);

    // bos, the text's tokens, eos; no padding, no truncation.
    std::vector<int> encode(std::string_view text) const;
    // The text's tokens alone (what transformers gives with add_special_tokens=False).
    std::vector<int> encode_content(std::string_view text) const;
    // The token strings of encode_content(text), e.g. "a</w>" (transformers' tokenize()).
    std::vector<std::string> tokenize(std::string_view text) const;

    // Text of the ids as transformers' decode() gives it: bytes joined, invalid UTF-8 → U+FFFD,
    // "</w>" → space, white space stripped at both ends. Throws sd::RangeError for an id
    // outside 0..49407.
    std::string decode(const std::vector<int> & ids, bool skip_special_tokens = false) const;

    // The vocabulary's string for an id, e.g. "a</w>", "Ġ" (transformers' convert_ids_to_tokens).
    const std::string & token(int id) const;
    // The id of a vocabulary string, or -1.
    int token_id(std::string_view token) const;

    static bool is_special(int id) { return id == kBosId || id == kEosId; }

private:
    void bpe(const std::string & piece, std::vector<int> & out) const;
    void encode_normalized(std::u32string_view text, std::vector<int> & out) const;
    void encode_segment(std::string_view raw, std::vector<int> & out) const;

    int byte_id_[256];                         // byte → id of its symbol (add 256 for the "</w>" form)
    std::vector<std::string> tokens_;          // id → vocabulary string (UTF-8)
    std::vector<std::string> token_bytes_;     // id → the bytes it stands for ("</w>" kept as text)
    std::unordered_map<std::string, int> ids_; // vocabulary string → id
    std::unordered_map<uint64_t, int> ranks_;  // (left id << 32 | right id) → merge rank

    // Pieces repeat a lot across prompts; their BPE is cached (bounded, cleared when full).
    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int>> cache_;
};

// ---- prompts (text/prompt_parser.cpp) ----
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

struct WeightedText {
    std::string text;
    double weight = 1.0;
};

// A BREAK comes out as {"BREAK", -1}, A1111's marker. Like any piece it is multiplied by the
// brackets around it, and only an exact -1 ends a chunk: "(a BREAK b)" tokenizes "BREAK" as a
// word of weight -1.1, as A1111 does.
std::vector<WeightedText> parse_prompt_attention(std::string_view prompt);

enum class PromptMode {
    chunks,    // A1111: as many 77-token chunks as the prompt needs
    truncate,  // diffusers: one chunk, tokens past the 75th dropped
};

PromptMode prompt_mode_from_name(const std::string & name);  // "chunks", "truncate"; sd::RangeError otherwise

// A textual-inversion embedding as the prompt tokenizer sees it: wherever the ids of its name
// (`tokens`) appear in a piece of the prompt they become `count` ids first_id … first_id+count-1,
// ids past the vocabulary that the text encoder reads from the rows it is given with the call
// (ClipTextEncoder::encode). A1111's rule: the longest name that matches at a position wins, and an
// embedding that does not fit in what is left of a chunk starts the next one.
struct EmbeddingTrigger {
    std::vector<int> tokens;
    int first_id = 0;
    int count = 0;
};

struct PromptOptions {
    PromptMode mode = PromptMode::chunks;
    bool weighting = true;  // false: the prompt is literal text of weight 1 (diffusers; A1111's emphasis "None")
    int pad_id = ClipTokenizer::kEosId;  // SD 1.x pads with <|endoftext|>, SD 2.x with "!" (0)
    int comma_backtrack = 20;  // A1111's comma_padding_backtrack; 0 turns it off
    std::vector<EmbeddingTrigger> embeddings;  // textual inversion (none by default)
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
// Embeddings (options.embeddings) replace their names' ids in both modes.
// Throws sd::RangeError for a pad id outside the vocabulary or an embedding of no name, no
// vector, more than 75 vectors or ids inside the vocabulary.
std::vector<PromptChunk> tokenize_prompt(const ClipTokenizer & tokenizer, std::string_view prompt,
                                         const PromptOptions & options = {});

} // namespace sd
