#pragma once
// Files the targets that need a model or the tokenizer read once, at start: the repository's
// fixtures (SDNODE_SOURCE_DIR) and the CLIP merges list that scripts/fuzz.mjs gunzips into the
// build folder (SDNODE_FUZZ_MERGES). Both paths are given by the build.
#include <fstream>
#include <sstream>
#include <string>

#include "sdcore/text.h"

namespace fuzz {

inline std::string source_path(const std::string & relative) { return std::string(SDNODE_SOURCE_DIR) + "/" + relative; }

inline const sd::ClipTokenizer & clip_tokenizer() {
    static const sd::ClipTokenizer tokenizer = [] {
        std::ifstream in(SDNODE_FUZZ_MERGES, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        return sd::ClipTokenizer(text.str());
    }();
    return tokenizer;
}

} // namespace fuzz
