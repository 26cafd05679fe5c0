#pragma once
// The Unicode the tokenizer and the prompt parser need: UTF-8 in and out, a few character
// classes, per-character lower case and NFC. The data comes from unicode_tables.cpp, generated
// from Node's ICU by tools/unicode/make_unicode_tables.mjs (see there for the Unicode version).
//
// Measured against transformers' tokenizers (0.23) over every code point: white space and lower
// case agree everywhere; letters and numbers agree except for the 4644 letters and 13 numbers
// new in Unicode 17 (mostly CJK Extension J, U+323B0..U+3347F), which its regex engine does not
// know yet; its NFC uses Unicode 9.0 data, so text with combining marks or compositions added
// since (Bengali U+09FE, Sogdian, Tulu-Tigalari, Todhri, …) normalizes differently there. Python's
// own classes (str.isspace, \w, \d), which the prompt parser follows, agree with these on every
// character Python 3.11 (Unicode 14) knows.
#include <string>
#include <string_view>

namespace sd::unicode {

// UTF-8 → code points. Bytes that are not well-formed UTF-8 (stray continuation bytes, truncated
// or overlong sequences, surrogates, values past U+10FFFF) become U+FFFD, one per maximal
// ill-formed subpart, as WHATWG and Python's errors='replace' do.
std::u32string decode_utf8(std::string_view text);

void append_utf8(std::string & out, char32_t cp);
std::string encode_utf8(std::u32string_view text);

// General category L (letters) and N (numbers).
bool is_letter(char32_t cp);
bool is_number(char32_t cp);

// The White_Space property: U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A,
// U+2028, U+2029, U+202F, U+205F, U+3000. This is Oniguruma's \s, which transformers' CLIP
// tokenizer uses.
bool is_white_space(char32_t cp);

// Python's str.isspace() (and its re module's \s): White_Space plus U+001C..U+001F, the
// separators Unicode gives a bidi class of B or S but not White_Space.
bool is_python_space(char32_t cp);

// Python's \w for str patterns, as far as A1111's prompt syntax needs it: letters, numbers and '_'.
bool is_python_word(char32_t cp);

// The value 0..9 of a decimal digit (general category Nd, any script), or -1.
int decimal_digit_value(char32_t cp);

// Appends the lower case of one code point on its own: Unicode's full lowercase mapping without
// context, so 'İ' gives "i̇" (two code points) and 'Σ' always 'σ' (no final sigma).
void append_lowercase(std::u32string & out, char32_t cp);

// Normalization Form C.
std::u32string nfc(std::u32string_view text);

} // namespace sd::unicode
