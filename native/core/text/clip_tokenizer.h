#pragma once
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

} // namespace sd
