#include "io/json.h"

#include <cmath>
#include <locale>
#include <memory>
#include <sstream>
#include <unordered_set>

#include "io/mapped_file.h"

namespace sd::json {

bool Value::as_bool() const {
    if (type_ != Type::boolean) throw std::logic_error("JSON value is not a boolean");
    return bool_;
}

double Value::as_double() const {
    if (type_ != Type::number) throw std::logic_error("JSON value is not a number");
    return number_;
}

int64_t Value::as_int64() const {
    if (!is_integer()) throw std::logic_error("JSON value is not an integer");
    return integer_;
}

const std::string & Value::as_string() const {
    if (type_ != Type::string) throw std::logic_error("JSON value is not a string");
    return string_;
}

const Value::Array & Value::as_array() const {
    if (type_ != Type::array) throw std::logic_error("JSON value is not an array");
    return array_;
}

const Value::Object & Value::as_object() const {
    if (type_ != Type::object) throw std::logic_error("JSON value is not an object");
    return object_;
}

const Value * Value::find(std::string_view key) const {
    if (type_ != Type::object) return nullptr;
    for (const auto & member : object_) {
        if (member.first == key) return &member.second;
    }
    return nullptr;
}

Value Value::make_bool(bool value) {
    Value v;
    v.type_ = Type::boolean;
    v.bool_ = value;
    return v;
}

Value Value::make_number(double value) {
    Value v;
    v.type_ = Type::number;
    v.number_ = value;
    // 2^63 itself does not fit an int64, hence the strict upper bound.
    if (std::isfinite(value) && std::floor(value) == value && value >= -9223372036854775808.0 &&
        value < 9223372036854775808.0) {
        v.is_integer_ = true;
        v.integer_ = static_cast<int64_t>(value);
    }
    return v;
}

Value Value::make_integer(int64_t value) {
    Value v;
    v.type_ = Type::number;
    v.number_ = static_cast<double>(value);
    v.is_integer_ = true;
    v.integer_ = value;
    return v;
}

Value Value::make_string(std::string value) {
    Value v;
    v.type_ = Type::string;
    v.string_ = std::move(value);
    return v;
}

Value Value::make_array(Array items) {
    Value v;
    v.type_ = Type::array;
    v.array_ = std::move(items);
    return v;
}

Value Value::make_object(Object members) {
    Value v;
    v.type_ = Type::object;
    v.object_ = std::move(members);
    return v;
}

const char * describe(const Value & value) {
    switch (value.type()) {
        case Value::Type::null: return "null";
        case Value::Type::boolean: return "a boolean";
        case Value::Type::number: return "a number";
        case Value::Type::string: return "a string";
        case Value::Type::array: return "an array";
        case Value::Type::object: return "an object";
    }
    return "a value";
}

namespace {

class Parser {
public:
    Parser(std::string_view text, const ParseOptions & options) : text_(text), options_(options) {}

    Value parse_document() {
        skip_whitespace();
        Value value = parse_value(0);
        skip_whitespace();
        if (pos_ != text_.size()) fail("unexpected data after the JSON value");
        return value;
    }

private:
    [[noreturn]] void fail(const std::string & message) const { throw ParseError(message, pos_); }

    bool at_end() const { return pos_ >= text_.size(); }
    unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }

    void skip_whitespace() {
        while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
    }

    void expect_literal(std::string_view literal) {
        if (text_.substr(pos_, literal.size()) != literal) fail("invalid literal");
        pos_ += literal.size();
    }

    Value parse_value(size_t depth) {
        if (at_end()) fail("unexpected end of input");
        if (++values_ > options_.max_values) fail("more than " + std::to_string(options_.max_values) + " values");
        switch (peek()) {
            case '{': return parse_object(depth + 1);
            case '[': return parse_array(depth + 1);
            case '"': return Value::make_string(parse_string());
            case 't': expect_literal("true"); return Value::make_bool(true);
            case 'f': expect_literal("false"); return Value::make_bool(false);
            case 'n': expect_literal("null"); return Value::make_null();
            default:
                if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
                fail("unexpected character");
        }
    }

    Value parse_object(size_t depth) {
        if (depth > options_.max_depth) fail("nesting deeper than " + std::to_string(options_.max_depth));
        ++pos_;  // '{'
        Value::Object members;
        std::unordered_set<std::string> keys;
        skip_whitespace();
        if (!at_end() && peek() == '}') {
            ++pos_;
            return Value::make_object(std::move(members));
        }
        for (;;) {
            skip_whitespace();
            if (at_end() || peek() != '"') fail("expected a string key");
            size_t key_pos = pos_;
            std::string key = parse_string();
            // Duplicate keys would make the header mean different things to different readers.
            if (!keys.insert(key).second) {
                pos_ = key_pos;
                fail("duplicate key \"" + key + "\"");
            }
            skip_whitespace();
            if (at_end() || peek() != ':') fail("expected ':'");
            ++pos_;
            skip_whitespace();
            Value value = parse_value(depth);
            members.emplace_back(std::move(key), std::move(value));
            skip_whitespace();
            if (at_end()) fail("unexpected end of input in an object");
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == '}') {
                ++pos_;
                return Value::make_object(std::move(members));
            }
            fail("expected ',' or '}'");
        }
    }

    Value parse_array(size_t depth) {
        if (depth > options_.max_depth) fail("nesting deeper than " + std::to_string(options_.max_depth));
        ++pos_;  // '['
        Value::Array items;
        skip_whitespace();
        if (!at_end() && peek() == ']') {
            ++pos_;
            return Value::make_array(std::move(items));
        }
        for (;;) {
            skip_whitespace();
            items.push_back(parse_value(depth));
            skip_whitespace();
            if (at_end()) fail("unexpected end of input in an array");
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == ']') {
                ++pos_;
                return Value::make_array(std::move(items));
            }
            fail("expected ',' or ']'");
        }
    }

    static void append_utf8(std::string & out, uint32_t code) {
        if (code < 0x80) {
            out += static_cast<char>(code);
        } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (code >> 18));
            out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        }
    }

    uint32_t parse_hex4() {
        if (text_.size() - pos_ < 4) fail("truncated \\u escape");
        uint32_t code = 0;
        for (int i = 0; i < 4; ++i) {
            unsigned char c = peek();
            uint32_t digit;
            if (c >= '0' && c <= '9') digit = c - '0';
            else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
            else fail("invalid hex digit in \\u escape");
            code = code * 16 + digit;
            ++pos_;
        }
        return code;
    }

    void parse_escape(std::string & out) {
        ++pos_;  // '\'
        if (at_end()) fail("unexpected end of input in an escape");
        unsigned char c = peek();
        ++pos_;
        switch (c) {
            case '"': out += '"'; return;
            case '\\': out += '\\'; return;
            case '/': out += '/'; return;
            case 'b': out += '\b'; return;
            case 'f': out += '\f'; return;
            case 'n': out += '\n'; return;
            case 'r': out += '\r'; return;
            case 't': out += '\t'; return;
            case 'u': break;
            default: --pos_; fail("invalid escape");
        }
        uint32_t code = parse_hex4();
        if (code >= 0xDC00 && code <= 0xDFFF) fail("unpaired low surrogate in \\u escape");
        if (code >= 0xD800 && code <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") fail("unpaired high surrogate in \\u escape");
            pos_ += 2;
            uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate not followed by a low surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, code);
    }

    // Copies one UTF-8 sequence, rejecting overlong forms, surrogates and truncation.
    void copy_utf8(std::string & out) {
        unsigned char lead = peek();
        size_t length;
        uint32_t code;
        if (lead < 0x80) { length = 1; code = lead; }
        else if ((lead & 0xE0) == 0xC0) { length = 2; code = lead & 0x1F; }
        else if ((lead & 0xF0) == 0xE0) { length = 3; code = lead & 0x0F; }
        else if ((lead & 0xF8) == 0xF0) { length = 4; code = lead & 0x07; }
        else fail("invalid UTF-8");
        if (text_.size() - pos_ < length) fail("truncated UTF-8 sequence");
        for (size_t i = 1; i < length; ++i) {
            unsigned char c = static_cast<unsigned char>(text_[pos_ + i]);
            if ((c & 0xC0) != 0x80) fail("invalid UTF-8");
            code = (code << 6) | (c & 0x3F);
        }
        static const uint32_t min_code[] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < min_code[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) fail("invalid UTF-8");
        out.append(text_.data() + pos_, length);
        pos_ += length;
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (at_end()) fail("unterminated string");
            unsigned char c = peek();
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (c == '\\') {
                parse_escape(out);
            } else if (c < 0x20) {
                fail("control character in a string");
            } else {
                copy_utf8(out);
            }
        }
    }

    Value parse_number() {
        size_t start = pos_;
        bool negative = false;
        if (peek() == '-') {
            negative = true;
            ++pos_;
        }
        if (at_end() || !(peek() >= '0' && peek() <= '9')) fail("invalid number");
        if (peek() == '0') {
            ++pos_;
            if (!at_end() && peek() >= '0' && peek() <= '9') fail("leading zero in a number");
        } else {
            while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
        }
        bool integral = true;
        if (!at_end() && peek() == '.') {
            integral = false;
            ++pos_;
            if (at_end() || !(peek() >= '0' && peek() <= '9')) fail("invalid number");
            while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
        }
        if (!at_end() && (peek() == 'e' || peek() == 'E')) {
            integral = false;
            ++pos_;
            if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
            if (at_end() || !(peek() >= '0' && peek() <= '9')) fail("invalid number");
            while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
        }
        std::string_view literal = text_.substr(start, pos_ - start);
        if (integral) {
            // Exact int64 arithmetic; fall back to a double beyond its range.
            uint64_t magnitude = 0;
            bool overflow = false;
            for (char c : literal.substr(negative ? 1 : 0)) {
                uint64_t digit = static_cast<uint64_t>(c - '0');
                if (magnitude > (UINT64_MAX - digit) / 10) {
                    overflow = true;
                    break;
                }
                magnitude = magnitude * 10 + digit;
            }
            const uint64_t limit = negative ? uint64_t(INT64_MAX) + 1 : uint64_t(INT64_MAX);
            if (!overflow && magnitude <= limit) {
                int64_t value = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
                return Value::make_integer(value);
            }
        }
        // The classic locale, so that a host process's locale cannot change the decimal point.
        std::istringstream stream{std::string(literal)};
        stream.imbue(std::locale::classic());
        double value = 0;
        stream >> value;
        // The literal is well-formed, so failure means it overflows a double (underflow reads as 0).
        if (stream.fail() || !std::isfinite(value)) {
            pos_ = start;
            fail("number out of range");
        }
        return Value::make_number(value);
    }

    std::string_view text_;
    ParseOptions options_;
    size_t pos_ = 0;
    size_t values_ = 0;
};

} // namespace

Value parse(std::string_view text, const ParseOptions & options) {
    return Parser(text, options).parse_document();
}

Value parse_object_file(const std::string & path, const std::function<void(const std::string & why)> & fail) {
    std::shared_ptr<const MappedFile> mapped = MappedFile::open(path);
    Value root;
    try {
        root = parse(std::string_view(reinterpret_cast<const char *>(mapped->data()), mapped->size()));
    } catch (const ParseError & e) {
        fail(std::string("invalid JSON: ") + e.what());
        throw;  // `fail` did not throw
    }
    if (!root.is_object()) {
        fail("the config is not a JSON object");
        throw std::logic_error("parse_object_file: fail() returned");
    }
    return root;
}

} // namespace sd::json
