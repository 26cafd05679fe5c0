#pragma once
// The shapes of the generated tables in unicode_tables.cpp (tools/unicode/make_unicode_tables.mjs).
// Only unicode.cpp reads them; everything else goes through unicode.h.
#include <cstddef>
#include <cstdint>

namespace sd::unicode::tables {

struct Range {
    char32_t first, last;  // inclusive; sorted, disjoint
};

// Code points first, first + stride, … up to last lower-case to themselves plus delta.
struct CaseRun {
    char32_t first, last;
    int32_t delta;
    uint8_t stride;
};

// Code points whose lower case is more than one code point (U+0130 → i + U+0307).
struct Expansion {
    char32_t cp;
    char32_t lower[3];  // zero-terminated when shorter
};

// The full canonical decomposition of cp: kDecompositionPool[offset .. offset + length).
struct Decomposition {
    char32_t cp;
    uint16_t offset;
    uint8_t length;
};

// first + second compose to composite under NFC (primary composites only; sorted by first, second).
struct Composition {
    char32_t first, second, composite;
};

// Non-zero canonical combining classes, as order-preserving ranks (1 = lowest class).
struct ClassRun {
    char32_t first, last;
    uint8_t rank;
};

extern const Range kLetters[];
extern const size_t kLettersCount;
extern const Range kNumbers[];
extern const size_t kNumbersCount;
extern const Range kDecimalDigits[];  // each range is whole runs of ten, starting at a zero
extern const size_t kDecimalDigitsCount;
extern const CaseRun kLowercaseRuns[];
extern const size_t kLowercaseRunsCount;
extern const Expansion kLowercaseExpansions[];
extern const size_t kLowercaseExpansionsCount;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionsCount;
extern const char32_t kDecompositionPool[];
extern const size_t kDecompositionPoolCount;
extern const Composition kCompositions[];
extern const size_t kCompositionsCount;
extern const ClassRun kCombiningClasses[];
extern const size_t kCombiningClassesCount;

} // namespace sd::unicode::tables
