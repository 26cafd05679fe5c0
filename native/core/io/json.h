#pragma once
// A small strict JSON parser (RFC 8259) for the headers and configs that model files carry:
// safetensors headers, diffusers' config.json files. Objects keep their keys in file order and
// reject duplicate keys; numbers keep their exact int64 value when they are integers.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sd::json {

// Thrown on malformed input; `offset` is the byte position of the problem.
class ParseError : public std::runtime_error {
public:
    ParseError(const std::string & message, size_t offset)
        : std::runtime_error(message + " at byte " + std::to_string(offset)), offset_(offset) {}
    size_t offset() const { return offset_; }

private:
    size_t offset_;
};

class Value {
public:
    enum class Type { null, boolean, number, string, array, object };
    using Array = std::vector<Value>;
    using Object = std::vector<std::pair<std::string, Value>>;

    Value() = default;

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::null; }
    bool is_bool() const { return type_ == Type::boolean; }
    bool is_number() const { return type_ == Type::number; }
    bool is_string() const { return type_ == Type::string; }
    bool is_array() const { return type_ == Type::array; }
    bool is_object() const { return type_ == Type::object; }
    // True when the number is integral and its exact value fits an int64.
    bool is_integer() const { return type_ == Type::number && is_integer_; }

    // The accessors throw std::logic_error on the wrong type: check first.
    bool as_bool() const;
    double as_double() const;
    int64_t as_int64() const;
    const std::string & as_string() const;
    const Array & as_array() const;
    const Object & as_object() const;

    // The member named `key` of an object, or nullptr (also when this is not an object).
    const Value * find(std::string_view key) const;

    static Value make_null() { return Value(); }
    static Value make_bool(bool value);
    static Value make_number(double value);
    static Value make_integer(int64_t value);
    static Value make_string(std::string value);
    static Value make_array(Array items);
    static Value make_object(Object members);

private:
    Type type_ = Type::null;
    bool bool_ = false;
    bool is_integer_ = false;
    double number_ = 0;
    int64_t integer_ = 0;
    std::string string_;
    Array array_;
    Object object_;
};

struct ParseOptions {
    size_t max_depth = 64;         // nesting of arrays and objects
    size_t max_values = 1u << 22;  // bounds memory: a value takes ~100 bytes, its text as few as 2
};

// Parses one JSON value; whitespace may surround it, nothing else may follow it.
Value parse(std::string_view text, const ParseOptions & options = {});

// A short description of a value's type for error messages: "a string", "an array", ...
const char * describe(const Value & value);

// The JSON object in the file at `path` (a network's config.json). Invalid JSON or another kind
// of value is reported through `fail(why)`, which must throw the caller's own error.
Value parse_object_file(const std::string & path, const std::function<void(const std::string & why)> & fail);

} // namespace sd::json
