#include "text/unicode.h"

#include <algorithm>
#include <cstdint>

#include "text/unicode_tables.h"

namespace sd::unicode {

using namespace tables;

namespace {

constexpr char32_t kReplacement = 0xFFFD;

bool in_ranges(const Range * ranges, size_t count, char32_t cp) {
    const Range * end = ranges + count;
    const Range * it = std::upper_bound(ranges, end, cp, [](char32_t c, const Range & r) { return c < r.first; });
    return it != ranges && cp <= (it - 1)->last;
}

// Hangul syllables compose and decompose by arithmetic, not by table.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

int combining_rank(char32_t cp) {
    if (cp < 0x300) return 0;
    const ClassRun * end = kCombiningClasses + kCombiningClassesCount;
    const ClassRun * it = std::upper_bound(kCombiningClasses, end, cp, [](char32_t c, const ClassRun & r) { return c < r.first; });
    if (it == kCombiningClasses || cp > (it - 1)->last) return 0;
    return (it - 1)->rank;
}

void append_decomposition(std::u32string & out, char32_t cp) {
    if (cp >= kSBase && cp < kSBase + kSCount) {
        char32_t s = cp - kSBase;
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
        return;
    }
    const Decomposition * end = kDecompositions + kDecompositionsCount;
    const Decomposition * it = std::lower_bound(kDecompositions, end, cp, [](const Decomposition & d, char32_t c) { return d.cp < c; });
    if (it != end && it->cp == cp) {
        out.append(kDecompositionPool + it->offset, it->length);
    } else {
        out.push_back(cp);
    }
}

// The primary composite of (first, second), or 0.
char32_t compose(char32_t first, char32_t second) {
    if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount) {
        return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
    }
    if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
        second < kTBase + kTCount) {
        return first + (second - kTBase);
    }
    const Composition * end = kCompositions + kCompositionsCount;
    const Composition * it = std::lower_bound(kCompositions, end, std::make_pair(first, second),
        [](const Composition & c, const std::pair<char32_t, char32_t> & key) {
            return c.first != key.first ? c.first < key.first : c.second < key.second;
        });
    return it != end && it->first == first && it->second == second ? it->composite : 0;
}

} // namespace

std::u32string decode_utf8(std::string_view text) {
    std::u32string out;
    out.reserve(text.size());
    const auto * s = reinterpret_cast<const unsigned char *>(text.data());
    size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b < 0x80) {
            out.push_back(b);
            ++i;
            continue;
        }
        // Length and the allowed range of the second byte (Unicode's table of well-formed
        // sequences); later continuation bytes are always 80..BF.
        size_t length = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        char32_t cp = 0;
        if (b >= 0xC2 && b <= 0xDF) { length = 2; cp = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) {
            length = 3; cp = b & 0x0F;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            length = 4; cp = b & 0x07;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        }
        if (length == 0) {  // 80..C1, F5..FF never start a character
            out.push_back(kReplacement);
            ++i;
            continue;
        }
        size_t j = 1;
        for (; j < length && i + j < n; ++j) {
            unsigned char c = s[i + j];
            if (c < (j == 1 ? lo : 0x80) || c > (j == 1 ? hi : 0xBF)) break;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (j == length) {
            out.push_back(cp);
        } else {
            out.push_back(kReplacement);  // the valid prefix is one ill-formed subpart
        }
        i += j;
    }
    return out;
}

void append_utf8(std::string & out, char32_t cp) {
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacement;
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::string encode_utf8(std::u32string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char32_t cp : text) append_utf8(out, cp);
    return out;
}

bool is_letter(char32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(kLetters, kLettersCount, cp);
}

bool is_number(char32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(kNumbers, kNumbersCount, cp);
}

bool is_white_space(char32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_python_space(char32_t cp) {
    return is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

bool is_python_word(char32_t cp) {
    return cp == '_' || is_letter(cp) || is_number(cp);
}

int decimal_digit_value(char32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9' ? static_cast<int>(cp - '0') : -1;
    const Range * end = kDecimalDigits + kDecimalDigitsCount;
    const Range * it = std::upper_bound(kDecimalDigits, end, cp, [](char32_t c, const Range & r) { return c < r.first; });
    if (it == kDecimalDigits || cp > (it - 1)->last) return -1;
    return static_cast<int>((cp - (it - 1)->first) % 10);
}

void append_lowercase(std::u32string & out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        return;
    }
    for (size_t i = 0; i < kLowercaseExpansionsCount; ++i) {
        const Expansion & e = kLowercaseExpansions[i];
        if (e.cp != cp) continue;
        for (char32_t c : e.lower) {
            if (c == 0) break;
            out.push_back(c);
        }
        return;
    }
    const CaseRun * end = kLowercaseRuns + kLowercaseRunsCount;
    const CaseRun * it = std::upper_bound(kLowercaseRuns, end, cp, [](char32_t c, const CaseRun & r) { return c < r.first; });
    if (it != kLowercaseRuns) {
        const CaseRun & run = *(it - 1);
        if (cp <= run.last && (cp - run.first) % run.stride == 0) {
            out.push_back(static_cast<char32_t>(static_cast<int64_t>(cp) + run.delta));
            return;
        }
    }
    out.push_back(cp);
}

std::u32string nfc(std::u32string_view text) {
    // Below U+0300 every character is already NFC and none combines with its neighbours.
    if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x300; })) return std::u32string(text);

    // 1. Full canonical decomposition.
    std::u32string s;
    s.reserve(text.size() + 8);
    for (char32_t cp : text) append_decomposition(s, cp);

    // 2. Canonical order: within each run of non-starters, a stable sort by combining class.
    for (size_t i = 0; i < s.size();) {
        if (combining_rank(s[i]) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < s.size() && combining_rank(s[j]) != 0) ++j;
        std::stable_sort(s.begin() + i, s.begin() + j,
                         [](char32_t a, char32_t b) { return combining_rank(a) < combining_rank(b); });
        i = j;
    }

    // 3. Canonical composition: each character joins the last starter unless something between
    // them blocks it (a starter, or a mark of the same or a higher class).
    if (s.empty()) return s;
    size_t starter = 0;
    bool have_starter = combining_rank(s[0]) == 0;  // a leading mark composes with nothing
    int last_rank = 0;
    size_t kept = 1;
    for (size_t i = 1; i < s.size(); ++i) {
        char32_t ch = s[i];
        int rank = combining_rank(ch);
        char32_t composite = have_starter ? compose(s[starter], ch) : 0;
        if (composite != 0 && (last_rank < rank || last_rank == 0)) {
            s[starter] = composite;
            continue;
        }
        if (rank == 0) {
            starter = kept;
            have_starter = true;
        }
        last_rank = rank;
        s[kept++] = ch;
    }
    s.resize(kept);
    return s;
}

} // namespace sd::unicode
