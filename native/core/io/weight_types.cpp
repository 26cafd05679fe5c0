#include "io/weight_types.h"

#include <cstring>

#include "io/string_util.h"
#include "sdcore/error.h"

namespace sd {

namespace {

struct NamedType {
    const char * name;
    WeightType weight_type;
    ggml_type type;
};

const NamedType k_weight_types[] = {
    {"f32", WeightType::f32, GGML_TYPE_F32},    {"f16", WeightType::f16, GGML_TYPE_F16},
    {"bf16", WeightType::bf16, GGML_TYPE_BF16}, {"q8_0", WeightType::q8_0, GGML_TYPE_Q8_0},
    {"q5_0", WeightType::q5_0, GGML_TYPE_Q5_0}, {"q5_1", WeightType::q5_1, GGML_TYPE_Q5_1},
    {"q4_0", WeightType::q4_0, GGML_TYPE_Q4_0}, {"q4_1", WeightType::q4_1, GGML_TYPE_Q4_1},
};

const NamedType & entry(WeightType type) {
    for (const NamedType & t : k_weight_types) {
        if (t.weight_type == type) return t;
    }
    throw RangeError("Unknown weight type " + std::to_string(static_cast<int>(type)));
}

bool is_float_type(WeightType type) {
    return type == WeightType::f32 || type == WeightType::f16 || type == WeightType::bf16;
}

} // namespace

std::optional<WeightType> find_weight_type(const std::string & name) {
    for (const NamedType & t : k_weight_types) {
        if (name == t.name) return t.weight_type;
    }
    return std::nullopt;
}

WeightType parse_weight_type(const std::string & name) {
    if (std::optional<WeightType> type = find_weight_type(name)) return *type;
    throw RangeError("Expected a weight type of f32, f16, bf16, q8_0, q5_0, q5_1, q4_0 or q4_1 but received \"" + name + "\"");
}

const char * weight_type_name(WeightType type) { return entry(type).name; }

ggml_type to_ggml_type(WeightType type) { return entry(type).type; }

const char * weight_type_name(ggml_type type) {
    for (const NamedType & t : k_weight_types) {
        if (type == t.type) return t.name;
    }
    return ggml_type_name(type);
}

WeightType storage_type_for(const std::string & name, const std::vector<int64_t> & shape, WeightType requested) {
    if (shape.size() <= 1) return WeightType::f32;
    if (is_float_type(requested)) return requested;
    const bool is_linear = shape.size() == 2 && ends_with(name, ".weight") && name.find("embedding") == std::string::npos;
    if (is_linear && shape.back() % ggml_blck_size(to_ggml_type(requested)) == 0) return requested;
    return WeightType::f16;
}

} // namespace sd
