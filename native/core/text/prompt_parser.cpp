#include "sdcore/text.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cmath>
#include <limits>

#include "sdcore/error.h"
#include "text/unicode.h"

namespace sd {

namespace {

constexpr size_t kChunkTokens = 75;
constexpr size_t kChunkLength = kChunkTokens + 2;
constexpr double kRoundMultiplier = 1.1;
constexpr double kSquareMultiplier = 1 / 1.1;  // A1111 multiplies by this rather than dividing by 1.1

struct Piece {
    std::u32string text;
    double weight;
};

// Python's float() on what A1111's pattern [+-]?[.\d]+ matched: digits of any script, at most
// one point and at least one digit. Returns false where Python raises ValueError.
bool parse_python_float(std::u32string_view text, double & value) {
    std::string ascii;
    bool negative = false;
    size_t i = 0;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
    int points = 0, digits = 0;
    for (; i < text.size(); ++i) {
        if (text[i] == '.') {
            ++points;
            ascii.push_back('.');
            continue;
        }
        int d = unicode::decimal_digit_value(text[i]);
        if (d < 0) return false;
        ++digits;
        ascii.push_back(static_cast<char>('0' + d));
    }
    if (points > 1 || digits == 0) return false;
    double parsed = 0;
    auto [end, error] = std::from_chars(ascii.data(), ascii.data() + ascii.size(), parsed);
    if (end != ascii.data() + ascii.size()) return false;
    if (error == std::errc::result_out_of_range) {
        // Python gives inf past the largest double and 0 below the smallest: which one depends
        // on whether a non-zero digit comes before the point.
        size_t point = ascii.find('.');
        std::string whole = ascii.substr(0, point);
        parsed = whole.find_first_not_of('0') != std::string::npos ? std::numeric_limits<double>::infinity() : 0.0;
    } else if (error != std::errc()) {
        return false;
    }
    value = negative ? -parsed : parsed;
    return true;
}

bool is_syntax(char32_t c) {
    return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

// Plain text, split at A1111's BREAK pattern \s*\bBREAK\b\s* (Python's \s and \b, within this
// piece of text only): the parts with a {"BREAK", -1} between each two.
void add_text(std::vector<Piece> & res, std::u32string_view text) {
    static constexpr std::u32string_view kBreak = U"BREAK";
    auto word = [&](size_t i) { return i < text.size() && unicode::is_python_word(text[i]); };
    size_t part_start = 0;
    for (size_t q = 0; q + kBreak.size() <= text.size(); ++q) {
        if (text.compare(q, kBreak.size(), kBreak) != 0) continue;
        if ((q > 0 && word(q - 1)) || word(q + kBreak.size())) continue;
        size_t start = q;
        while (start > part_start && unicode::is_python_space(text[start - 1])) --start;
        size_t end = q + kBreak.size();
        while (end < text.size() && unicode::is_python_space(text[end])) ++end;
        res.push_back({std::u32string(text.substr(part_start, start - part_start)), 1.0});
        res.push_back({U"BREAK", -1.0});
        part_start = end;
        q = end - 1;
    }
    res.push_back({std::u32string(text.substr(part_start)), 1.0});
}

bool is_break(const WeightedText & piece) {
    return piece.weight == -1.0 && piece.text == "BREAK";
}

} // namespace

std::vector<WeightedText> parse_prompt_attention(std::string_view prompt) {
    const std::u32string s = unicode::decode_utf8(prompt);
    const std::u32string_view view(s);
    std::vector<Piece> res;
    std::vector<size_t> round, square;  // where each open bracket's pieces start
    auto multiply = [&](size_t from, double multiplier) {
        for (size_t p = from; p < res.size(); ++p) res[p].weight *= multiplier;
    };
    auto pop = [](std::vector<size_t> & stack) {
        size_t top = stack.back();
        stack.pop_back();
        return top;
    };

    const size_t n = s.size();
    for (size_t i = 0; i < n;) {
        char32_t c = s[i];
        if (c == '\\') {
            char32_t next = i + 1 < n ? s[i + 1] : 0;
            if (next == '(' || next == ')' || next == '[' || next == ']' || next == '\\') {
                res.push_back({std::u32string(1, next), 1.0});
                i += 2;
            } else {
                res.push_back({U"", 1.0});  // a lone backslash vanishes (but still splits pieces)
                i += 1;
            }
        } else if (c == '(') {
            round.push_back(res.size());
            ++i;
        } else if (c == '[') {
            square.push_back(res.size());
            ++i;
        } else if (c == ':') {
            // ":<number>)" closes a round bracket with that weight.
            size_t j = i + 1;
            if (j < n && (s[j] == '+' || s[j] == '-')) ++j;
            size_t k = j;
            while (k < n && (s[k] == '.' || unicode::decimal_digit_value(s[k]) >= 0)) ++k;
            if (k > j && k < n && s[k] == ')') {
                double weight = 0;
                if (round.empty()) {
                    add_text(res, view.substr(i, k + 1 - i));
                    i = k + 1;
                } else if (parse_python_float(view.substr(i + 1, k - i - 1), weight)) {
                    multiply(pop(round), weight);
                    i = k + 1;
                } else {
                    // A1111 stops with a ValueError here ("(a:1.2.3)"); we read the ':' as text
                    // and go on, so the ')' closes the bracket with the usual 1.1.
                    add_text(res, U":");
                    ++i;
                }
            } else {
                add_text(res, U":");
                ++i;
            }
        } else if (c == ')' && !round.empty()) {
            multiply(pop(round), kRoundMultiplier);
            ++i;
        } else if (c == ']' && !square.empty()) {
            multiply(pop(square), kSquareMultiplier);
            ++i;
        } else if (c == ')' || c == ']') {
            add_text(res, view.substr(i, 1));
            ++i;
        } else {
            size_t j = i + 1;
            while (j < n && !is_syntax(s[j])) ++j;
            add_text(res, view.substr(i, j - i));
            i = j;
        }
    }
    for (size_t pos : round) multiply(pos, kRoundMultiplier);
    for (size_t pos : square) multiply(pos, kSquareMultiplier);
    if (res.empty()) res.push_back({U"", 1.0});

    std::vector<WeightedText> merged;
    for (const Piece & piece : res) {
        if (!merged.empty() && merged.back().weight == piece.weight) {
            merged.back().text += unicode::encode_utf8(piece.text);
        } else {
            merged.push_back({unicode::encode_utf8(piece.text), piece.weight});
        }
    }
    return merged;
}

namespace {

// One token of a piece, or the first of an embedding's ids (`count` > 0: it stands for them all).
struct PieceItem {
    int id;
    int count;
};

// The piece's ids with embedding names replaced (A1111's find_embedding_at_position: at each
// position, the longest name whose ids match there).
std::vector<PieceItem> piece_items(const std::vector<int> & tokens, const std::vector<EmbeddingTrigger> & embeddings) {
    std::vector<PieceItem> items;
    items.reserve(tokens.size());
    for (size_t i = 0; i < tokens.size();) {
        const EmbeddingTrigger * best = nullptr;
        for (const EmbeddingTrigger & e : embeddings) {
            if (e.tokens.size() > tokens.size() - i || (best != nullptr && e.tokens.size() <= best->tokens.size())) continue;
            if (std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin() + static_cast<std::ptrdiff_t>(i))) best = &e;
        }
        if (best == nullptr) {
            items.push_back({tokens[i], 0});
            ++i;
        } else {
            items.push_back({best->first_id, best->count});
            i += best->tokens.size();
        }
    }
    return items;
}

void check_embeddings(const std::vector<EmbeddingTrigger> & embeddings) {
    for (size_t i = 0; i < embeddings.size(); ++i) {
        const EmbeddingTrigger & e = embeddings[i];
        const std::string at = "embeddings[" + std::to_string(i) + "]";
        if (e.tokens.empty()) throw RangeError("Expected " + at + " to have the ids of its name");
        if (e.count < 1 || e.count > static_cast<int>(kChunkTokens)) {
            throw RangeError("Expected " + at + " to have 1 to " + std::to_string(kChunkTokens) + " vectors but it has " +
                             std::to_string(e.count));
        }
        if (e.first_id < ClipTokenizer::kVocabSize) {
            throw RangeError("Expected the ids of " + at + " to follow the vocabulary (from " +
                             std::to_string(ClipTokenizer::kVocabSize) + ") but they start at " + std::to_string(e.first_id));
        }
    }
}

} // namespace

std::vector<PromptChunk> tokenize_prompt(const ClipTokenizer & tokenizer, std::string_view prompt,
                                         const PromptOptions & options) {
    if (options.pad_id < 0 || options.pad_id >= ClipTokenizer::kVocabSize) {
        throw RangeError("Expected integer padId between 0 and " + std::to_string(ClipTokenizer::kVocabSize - 1) +
                         " but received " + std::to_string(options.pad_id));
    }
    check_embeddings(options.embeddings);
    std::vector<WeightedText> parsed;
    if (options.weighting) {
        parsed = parse_prompt_attention(prompt);
    } else {
        parsed.push_back({std::string(prompt), 1.0});
    }

    std::vector<PromptChunk> chunks;
    if (options.mode == PromptMode::truncate) {
        PromptChunk chunk;
        chunk.ids.push_back(ClipTokenizer::kBosId);
        chunk.weights.push_back(1.0);
        for (const WeightedText & piece : parsed) {
            if (is_break(piece)) continue;
            for (const PieceItem & item : piece_items(tokenizer.encode_content(piece.text), options.embeddings)) {
                for (int k = 0; k < std::max(1, item.count); ++k) {
                    if (chunk.ids.size() == kChunkTokens + 1) break;
                    chunk.ids.push_back(item.id + k);
                    chunk.weights.push_back(piece.weight);
                }
            }
        }
        chunk.ids.push_back(ClipTokenizer::kEosId);
        chunk.weights.push_back(1.0);
        chunk.ids.resize(kChunkLength, options.pad_id);
        chunk.weights.resize(kChunkLength, 1.0);
        chunks.push_back(std::move(chunk));
        return chunks;
    }

    std::vector<int> ids;
    std::vector<double> weights;
    long last_comma = -1;  // where in `ids` the last comma of this chunk is
    auto next_chunk = [&] {
        PromptChunk chunk;
        chunk.ids.reserve(kChunkLength);
        chunk.ids.push_back(ClipTokenizer::kBosId);
        chunk.ids.insert(chunk.ids.end(), ids.begin(), ids.end());
        chunk.ids.resize(kChunkLength - 1, ClipTokenizer::kEosId);
        chunk.ids.push_back(ClipTokenizer::kEosId);
        chunk.weights.push_back(1.0);
        chunk.weights.insert(chunk.weights.end(), weights.begin(), weights.end());
        chunk.weights.resize(kChunkLength, 1.0);
        chunks.push_back(std::move(chunk));
        ids.clear();
        weights.clear();
        last_comma = -1;
    };
    for (const WeightedText & piece : parsed) {
        if (is_break(piece)) {
            next_chunk();
            continue;
        }
        for (const PieceItem & item : piece_items(tokenizer.encode_content(piece.text), options.embeddings)) {
            const int id = item.id;
            if (id == ClipTokenizer::kCommaId) {
                last_comma = static_cast<long>(ids.size());
            } else if (options.comma_backtrack != 0 && ids.size() == kChunkTokens && last_comma != -1 &&
                       static_cast<long>(kChunkTokens) - last_comma <= options.comma_backtrack) {
                // Keep the words after the last comma together: move them to the next chunk.
                size_t cut = static_cast<size_t>(last_comma) + 1;
                std::vector<int> moved_ids(ids.begin() + cut, ids.end());
                std::vector<double> moved_weights(weights.begin() + cut, weights.end());
                ids.resize(cut);
                weights.resize(cut);
                next_chunk();
                ids = std::move(moved_ids);
                weights = std::move(moved_weights);
            }
            if (ids.size() == kChunkTokens) next_chunk();
            if (item.count > 0) {
                // An embedding stays in one chunk.
                if (ids.size() + static_cast<size_t>(item.count) > kChunkTokens) next_chunk();
                for (int k = 0; k < item.count; ++k) {
                    ids.push_back(id + k);
                    weights.push_back(piece.weight);
                }
                continue;
            }
            ids.push_back(id);
            weights.push_back(piece.weight);
        }
    }
    if (!ids.empty() || chunks.empty()) next_chunk();

    if (options.pad_id != ClipTokenizer::kEosId) {
        // A1111 for SD 2.x: everything after the first <|endoftext|> becomes the pad id.
        for (PromptChunk & chunk : chunks) {
            size_t i = 0;
            while (chunk.ids[i] != ClipTokenizer::kEosId) ++i;
            for (++i; i < chunk.ids.size(); ++i) chunk.ids[i] = options.pad_id;
        }
    }
    return chunks;
}

PromptMode prompt_mode_from_name(const std::string & name) {
    if (name == "chunks") return PromptMode::chunks;
    if (name == "truncate") return PromptMode::truncate;
    throw RangeError("Expected mode to be one of chunks, truncate");
}

} // namespace sd
