// JSON values, a bounds-checked parser that records line numbers, and a writer.
// Objects keep their keys in document order, so a document read and written again
// keeps its shape (server entries are signed as written).
#pragma once

#include <cstdint>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace psi::json {

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Object = std::vector<Member>;

enum class Type { null, boolean, number, string, array, object };

class Value {
public:
    Value() = default;
    Value(std::nullptr_t) {}
    Value(bool boolean) : type_(Type::boolean), boolean_(boolean) {}
    Value(int number) : Value(static_cast<std::int64_t>(number)) {}
    Value(unsigned number) : Value(static_cast<std::int64_t>(number)) {}
    Value(std::int64_t number);
    Value(std::uint64_t number);
    Value(double number);
    Value(const char* text) : type_(Type::string), text_(text) {}
    Value(std::string text) : type_(Type::string), text_(std::move(text)) {}
    Value(std::string_view text) : type_(Type::string), text_(text) {}
    Value(Array array);
    Value(Object object);

    static Value number_from_text(std::string text);

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::null; }
    bool is_boolean() const { return type_ == Type::boolean; }
    bool is_number() const { return type_ == Type::number; }
    bool is_string() const { return type_ == Type::string; }
    bool is_array() const { return type_ == Type::array; }
    bool is_object() const { return type_ == Type::object; }

    // Accessors throw psi::Error when the type does not match.
    bool as_boolean() const;
    std::int64_t as_integer() const;
    double as_double() const;
    const std::string& as_string() const;
    const Array& as_array() const;
    Array& as_array();
    const Object& as_object() const;
    Object& as_object();

    // Object helpers: find returns nullptr when the key is absent or this is no object.
    const Value* find(std::string_view key) const;
    Value* find(std::string_view key);
    // Sets or replaces a member, keeping the position of an existing key.
    // A member of the wanted type, or `fallback` when it is absent, of another type, or (for an
    // integer) not a whole number in range.
    std::string get(std::string_view key, const char* fallback) const;
    std::string get(std::string_view key, const std::string& fallback) const;
    bool get(std::string_view key, bool fallback) const;
    std::int64_t get(std::string_view key, std::int64_t fallback) const;
    int get(std::string_view key, int fallback) const = delete;  // say which: std::int64_t{0}
    double get(std::string_view key, double fallback) const;
    // The strings of an array member; anything else in it, or no such array, gives none.
    std::vector<std::string> get_strings(std::string_view key) const;
    Value& set(std::string key, Value value);
    bool erase(std::string_view key);

    // Line (1-based) where the parser met this value; 0 when built in code.
    int line() const { return line_; }
    void set_line(int line) { line_ = line; }

    std::string dump() const;                // compact
    std::string dump_pretty(int indent = 2) const;

    friend bool operator==(const Value& a, const Value& b);

private:
    void write(std::string& out, int indent, int depth) const;

    Type type_ = Type::null;
    bool boolean_ = false;
    std::string text_;  // string value, or a number's text as written
    Array array_;
    Object object_;
    int line_ = 0;
};

const char* type_name(Type type);

// Parses one JSON document. Throws psi::Error naming `source` and the line on bad input.
// Depth and size are bounded so hostile input cannot exhaust the stack.
// `max_values` bounds the number of values, for documents whose shape is known to be small.
Value parse(std::string_view text, std::string_view source = "input", std::size_t max_values = SIZE_MAX);

std::string quote(std::string_view text);

// Go's encoding/json marshalling of a value decoded into interface{} (docs/protocol.md §1.4):
// object keys sorted bytewise, no whitespace, '<' '>' '&' U+2028 U+2029 escaped as \u003c
// \u003e \u0026 \u2028 \u2029, numbers as float64 in Go's shortest format (integers without
// ".0"; exponent form below 1e-6 and from 1e21, as "1e+21" and "1e-7", Go trimming "e-07" to "e-7").
std::string canonical_go(const Value& value);

}  // namespace psi::json
