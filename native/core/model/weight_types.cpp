#include "model/weight_types.h"

#include <cstring>

#include "sdcore/error.h"
#include "model/string_util.h"

namespace sd {

namespace {

struct NamedType {
    const char * name;
    ggml_type type;
};

const NamedType k_weight_types[] = {
    {"f32", GGML_TYPE_F32},   {"f16", GGML_TYPE_F16},   {"bf16", GGML_TYPE_BF16},
    {"q8_0", GGML_TYPE_Q8_0}, {"q5_0", GGML_TYPE_Q5_0}, {"q5_1", GGML_TYPE_Q5_1},
    {"q4_0", GGML_TYPE_Q4_0}, {"q4_1", GGML_TYPE_Q4_1},
};

bool is_float_type(ggml_type type) {
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
}

} // namespace

ggml_type parse_weight_type(const std::string & name) {
    for (const NamedType & t : k_weight_types) {
        if (name == t.name) return t.type;
    }
    throw RangeError("Expected a weight type of f32, f16, bf16, q8_0, q5_0, q5_1, q4_0 or q4_1 but received \"" + name + "\"");
}

const char * weight_type_name(ggml_type type) {
    for (const NamedType & t : k_weight_types) {
        if (type == t.type) return t.name;
    }
    return ggml_type_name(type);
}

ggml_type storage_type_for(const std::string & name, const std::vector<int64_t> & shape, ggml_type requested) {
    if (shape.size() <= 1) return GGML_TYPE_F32;
    if (is_float_type(requested)) return requested;
    const bool is_linear = shape.size() == 2 && ends_with(name, ".weight") && name.find("embedding") == std::string::npos;
    if (is_linear && shape.back() % ggml_blck_size(requested) == 0) return requested;
    return GGML_TYPE_F16;
}

} // namespace sd
