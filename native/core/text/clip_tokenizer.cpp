#include "sdcore/text.h"

#include <queue>
#include <tuple>

#include "sdcore/error.h"
#include "text/unicode.h"

namespace sd {

namespace {

constexpr std::string_view kBosText = "<|startoftext|>";
constexpr std::string_view kEosText = "<|endoftext|>";
constexpr std::string_view kEndOfWord = "</w>";
constexpr size_t kCacheLimit = 65536;

// GPT-2's reversible byte → printable character table, which CLIP uses: the printable Latin-1
// bytes stand for themselves, the other 68 take U+0100, U+0101, … in byte order. The vocabulary
// lists the printable ones first, then the others.
std::vector<std::pair<int, char32_t>> byte_symbols() {
    std::vector<std::pair<int, char32_t>> symbols;
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    for (int b = 0; b < 256; ++b) {
        if (printable(b)) symbols.emplace_back(b, static_cast<char32_t>(b));
    }
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        if (!printable(b)) symbols.emplace_back(b, next++);
    }
    return symbols;
}

bool starts_with(std::u32string_view text, size_t at, std::string_view ascii) {
    if (text.size() - at < ascii.size()) return false;
    for (size_t i = 0; i < ascii.size(); ++i) {
        if (text[at + i] != static_cast<char32_t>(ascii[i])) return false;
    }
    return true;
}

} // namespace

ClipTokenizer::ClipTokenizer(std::string_view merges_text) {
    auto fail = [](const std::string & why) {
        throw Error("ERR_MODEL_FORMAT", "Not a CLIP BPE merges list: " + why);
    };

    tokens_.reserve(kVocabSize);
    token_bytes_.reserve(kVocabSize);
    for (const auto & [byte, symbol] : byte_symbols()) {
        byte_id_[byte] = static_cast<int>(tokens_.size());
        std::string text;
        unicode::append_utf8(text, symbol);
        tokens_.push_back(text);
        token_bytes_.push_back(std::string(1, static_cast<char>(byte)));
    }
    for (int i = 0; i < 256; ++i) {
        tokens_.push_back(tokens_[i] + std::string(kEndOfWord));
        token_bytes_.push_back(token_bytes_[i] + std::string(kEndOfWord));
    }
    ids_.reserve(kVocabSize);
    for (int i = 0; i < 512; ++i) ids_.emplace(tokens_[i], i);

    // One merge per line, "left right"; the first line may be a version header.
    ranks_.reserve(kMergeCount);
    size_t pos = 0;
    int line_number = 0;
    while (static_cast<int>(ranks_.size()) < kMergeCount) {
        if (pos >= merges_text.size()) {
            fail("expected " + std::to_string(kMergeCount) + " merges but found " + std::to_string(ranks_.size()));
        }
        size_t end = merges_text.find('\n', pos);
        if (end == std::string_view::npos) end = merges_text.size();
        std::string_view line = merges_text.substr(pos, end - pos);
        pos = end + 1;
        ++line_number;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line_number == 1 && line.find("#version") != std::string_view::npos) continue;
        size_t space = line.find(' ');
        if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
            line.find(' ', space + 1) != std::string_view::npos) {
            fail("line " + std::to_string(line_number) + " is not two symbols separated by a space");
        }
        std::string left(line.substr(0, space));
        std::string right(line.substr(space + 1));
        auto l = ids_.find(left);
        auto r = ids_.find(right);
        if (l == ids_.end() || r == ids_.end()) {
            fail("line " + std::to_string(line_number) + " merges a symbol that no earlier line made");
        }
        int id = static_cast<int>(tokens_.size());
        uint64_t key = (static_cast<uint64_t>(l->second) << 32) | static_cast<uint32_t>(r->second);
        std::string joined = left + right;
        std::string bytes = token_bytes_[l->second] + token_bytes_[r->second];
        if (!ids_.emplace(joined, id).second || !ranks_.emplace(key, id - 512).second) {
            fail("line " + std::to_string(line_number) + " repeats an earlier merge");
        }
        tokens_.push_back(std::move(joined));
        token_bytes_.push_back(std::move(bytes));
    }
    for (std::string_view special : {kBosText, kEosText}) {
        ids_.emplace(std::string(special), static_cast<int>(tokens_.size()));
        tokens_.emplace_back(special);
        token_bytes_.emplace_back(special);
    }
}

const std::string & ClipTokenizer::token(int id) const {
    if (id < 0 || id >= kVocabSize) {
        throw RangeError("Expected integer ids between 0 and " + std::to_string(kVocabSize - 1) + " but received " + std::to_string(id));
    }
    return tokens_[id];
}

int ClipTokenizer::token_id(std::string_view token) const {
    auto it = ids_.find(std::string(token));
    return it == ids_.end() ? -1 : it->second;
}

// BPE of one piece (its UTF-8 bytes): start from byte symbols, "</w>" on the last, and apply
// merges lowest rank first; among equal ranks the leftmost first, as the reference does.
void ClipTokenizer::bpe(const std::string & piece, std::vector<int> & out) const {
    {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto hit = cache_.find(piece);
        if (hit != cache_.end()) {
            out.insert(out.end(), hit->second.begin(), hit->second.end());
            return;
        }
    }
    const int n = static_cast<int>(piece.size());
    std::vector<int> id(n), prev(n), next(n);
    for (int i = 0; i < n; ++i) {
        id[i] = byte_id_[static_cast<unsigned char>(piece[i])] + (i == n - 1 ? 256 : 0);
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
    }
    auto rank_of = [this](int a, int b) {
        auto it = ranks_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
        return it == ranks_.end() ? -1 : it->second;
    };
    // (rank, left position, left id, right id): stale entries are recognised by the ids.
    using Candidate = std::tuple<int, int, int, int>;
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    auto push = [&](int left) {
        if (left < 0 || next[left] < 0) return;
        int rank = rank_of(id[left], id[next[left]]);
        if (rank >= 0) queue.emplace(rank, left, id[left], id[next[left]]);
    };
    for (int i = 0; i + 1 < n; ++i) push(i);
    while (!queue.empty()) {
        auto [rank, left, left_id, right_id] = queue.top();
        queue.pop();
        int right = next[left];
        if (id[left] != left_id || right < 0 || id[right] != right_id) continue;  // stale
        id[left] = 512 + rank;
        id[right] = -1;
        next[left] = next[right];
        if (next[right] >= 0) prev[next[right]] = left;
        push(prev[left]);
        push(left);
    }
    std::vector<int> result;
    for (int i = 0; i >= 0 && i < n; i = next[i]) result.push_back(id[i]);
    out.insert(out.end(), result.begin(), result.end());

    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheLimit) cache_.clear();
    cache_.emplace(piece, std::move(result));
}

// Splits normalized text into pieces (see the header) and runs BPE on each.
void ClipTokenizer::encode_normalized(std::u32string_view text, std::vector<int> & out) const {
    std::string piece;
    auto emit = [&](size_t from, size_t to) {
        piece = unicode::encode_utf8(text.substr(from, to - from));
        bpe(piece, out);
    };
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        char32_t c = text[i];
        if (unicode::is_white_space(c)) {
            ++i;
            continue;
        }
        // The split pattern knows the special-token strings; what gets here (e.g. "<|ENDOFTEXT|>"
        // lower-cased) is then split again by the byte-level step into "<|", the word and "|>".
        bool special = false;
        for (std::string_view s : {kBosText, kEosText}) {
            if (starts_with(text, i, s)) {
                emit(i, i + 2);
                emit(i + 2, i + s.size() - 2);
                emit(i + s.size() - 2, i + s.size());
                i += s.size();
                special = true;
                break;
            }
        }
        if (special) continue;
        if (c == '\'' && i + 1 < n) {
            char32_t d = text[i + 1];
            size_t length = 0;
            if (d == 's' || d == 't' || d == 'm' || d == 'd') length = 2;
            else if (starts_with(text, i, "'re") || starts_with(text, i, "'ve") || starts_with(text, i, "'ll")) length = 3;
            if (length != 0) {
                emit(i, i + length);
                i += length;
                continue;
            }
        }
        size_t j = i + 1;
        if (unicode::is_letter(c)) {
            while (j < n && unicode::is_letter(text[j])) ++j;
        } else if (!unicode::is_number(c)) {  // a number is a piece on its own
            while (j < n && !unicode::is_white_space(text[j]) && !unicode::is_letter(text[j]) && !unicode::is_number(text[j])) ++j;
        }
        emit(i, j);
        i = j;
    }
}

// One part of the text between literal "<|endoftext|>"s: normalize, then split off
// "<|startoftext|>" (matched after normalization, as the SD tokenizer config asks).
void ClipTokenizer::encode_segment(std::string_view raw, std::vector<int> & out) const {
    if (raw.empty()) return;
    std::u32string composed = unicode::nfc(unicode::decode_utf8(raw));
    std::u32string text;
    text.reserve(composed.size());
    for (size_t i = 0; i < composed.size();) {
        if (unicode::is_white_space(composed[i])) {
            text.push_back(U' ');
            while (i < composed.size() && unicode::is_white_space(composed[i])) ++i;
        } else {
            unicode::append_lowercase(text, composed[i++]);
        }
    }
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
        if (starts_with(text, i, kBosText)) {
            encode_normalized(std::u32string_view(text).substr(start, i - start), out);
            out.push_back(kBosId);
            i += kBosText.size();
            start = i;
        } else {
            ++i;
        }
    }
    encode_normalized(std::u32string_view(text).substr(start), out);
}

std::vector<int> ClipTokenizer::encode_content(std::string_view text) const {
    std::vector<int> out;
    size_t start = 0;
    for (size_t at = text.find(kEosText); at != std::string_view::npos; at = text.find(kEosText, start)) {
        encode_segment(text.substr(start, at - start), out);
        out.push_back(kEosId);
        start = at + kEosText.size();
    }
    encode_segment(text.substr(start), out);
    return out;
}

std::vector<int> ClipTokenizer::encode(std::string_view text) const {
    std::vector<int> out{kBosId};
    std::vector<int> content = encode_content(text);
    out.insert(out.end(), content.begin(), content.end());
    out.push_back(kEosId);
    return out;
}

std::vector<std::string> ClipTokenizer::tokenize(std::string_view text) const {
    std::vector<std::string> out;
    for (int id : encode_content(text)) out.push_back(tokens_[id]);
    return out;
}

std::string ClipTokenizer::decode(const std::vector<int> & ids, bool skip_special_tokens) const {
    std::string bytes;
    for (int id : ids) {
        token(id);  // range check
        if (skip_special_tokens && is_special(id)) continue;
        bytes += token_bytes_[id];
    }
    // "</w>" is ASCII, so replacing it before the UTF-8 repair gives the same as after.
    std::string spaced;
    spaced.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        if (bytes.compare(i, kEndOfWord.size(), kEndOfWord) == 0) {
            spaced.push_back(' ');
            i += kEndOfWord.size();
        } else {
            spaced.push_back(bytes[i++]);
        }
    }
    std::u32string text = unicode::decode_utf8(spaced);
    size_t first = 0, last = text.size();
    while (first < last && unicode::is_python_space(text[first])) ++first;
    while (last > first && unicode::is_python_space(text[last - 1])) --last;
    return unicode::encode_utf8(std::u32string_view(text).substr(first, last - first));
}

} // namespace sd
