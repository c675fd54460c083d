#include "core/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/byte_reader.hpp"
#include "core/error.hpp"

namespace psi::json {

Value::Value(std::int64_t number) : type_(Type::number), text_(std::to_string(number)) {}
Value::Value(std::uint64_t number) : type_(Type::number), text_(std::to_string(number)) {}

Value::Value(double number) : type_(Type::number) {
    if (!std::isfinite(number)) throw Error("JSON cannot hold a number that is not finite");
    char buffer[32];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, number);
    text_.assign(buffer, result.ptr);
}

Value::Value(Array array) : type_(Type::array), array_(std::move(array)) {}
Value::Value(Object object) : type_(Type::object), object_(std::move(object)) {}

Value Value::number_from_text(std::string text) {
    Value value;
    value.type_ = Type::number;
    value.text_ = std::move(text);
    return value;
}

const char* type_name(Type type) {
    switch (type) {
        case Type::null: return "null";
        case Type::boolean: return "true or false";
        case Type::number: return "a number";
        case Type::string: return "a string";
        case Type::array: return "an array";
        case Type::object: return "an object";
    }
    return "?";
}

namespace {

[[noreturn]] void wrong_type(Type wanted, Type found) {
    throw Error(std::string("expected ") + type_name(wanted) + ", found " + type_name(found));
}

}  // namespace

bool Value::as_boolean() const {
    if (type_ != Type::boolean) wrong_type(Type::boolean, type_);
    return boolean_;
}

std::int64_t Value::as_integer() const {
    if (type_ != Type::number) wrong_type(Type::number, type_);
    std::int64_t number = 0;
    auto result = std::from_chars(text_.data(), text_.data() + text_.size(), number);
    if (result.ec != std::errc() || result.ptr != text_.data() + text_.size())
        throw Error("expected a whole number, found " + text_);
    return number;
}

double Value::as_double() const {
    if (type_ != Type::number) wrong_type(Type::number, type_);
    return std::strtod(text_.c_str(), nullptr);
}

const std::string& Value::as_string() const {
    if (type_ != Type::string) wrong_type(Type::string, type_);
    return text_;
}

const Array& Value::as_array() const {
    if (type_ != Type::array) wrong_type(Type::array, type_);
    return array_;
}

Array& Value::as_array() {
    if (type_ != Type::array) wrong_type(Type::array, type_);
    return array_;
}

const Object& Value::as_object() const {
    if (type_ != Type::object) wrong_type(Type::object, type_);
    return object_;
}

Object& Value::as_object() {
    if (type_ != Type::object) wrong_type(Type::object, type_);
    return object_;
}

const Value* Value::find(std::string_view key) const {
    if (type_ != Type::object) return nullptr;
    for (const auto& member : object_)
        if (member.first == key) return &member.second;
    return nullptr;
}

std::string Value::get(std::string_view key, const char* fallback) const { return get(key, std::string(fallback)); }

std::string Value::get(std::string_view key, const std::string& fallback) const {
    const Value* value = find(key);
    return value && value->is_string() ? value->as_string() : fallback;
}

bool Value::get(std::string_view key, bool fallback) const {
    const Value* value = find(key);
    return value && value->is_boolean() ? value->as_boolean() : fallback;
}

std::int64_t Value::get(std::string_view key, std::int64_t fallback) const {
    const Value* value = find(key);
    if (!value || !value->is_number()) return fallback;
    std::int64_t number = 0;
    const std::string& text = value->text_;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), number);
    return result.ec == std::errc() && result.ptr == text.data() + text.size() ? number : fallback;
}

double Value::get(std::string_view key, double fallback) const {
    const Value* value = find(key);
    return value && value->is_number() ? value->as_double() : fallback;
}

std::vector<std::string> Value::get_strings(std::string_view key) const {
    std::vector<std::string> items;
    if (const Value* list = find(key); list && list->is_array())
        for (const Value& item : list->as_array())
            if (item.is_string()) items.push_back(item.as_string());
    return items;
}

Value* Value::find(std::string_view key) {
    return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

Value& Value::set(std::string key, Value value) {
    if (type_ == Type::null) type_ = Type::object;
    if (Value* existing = find(key)) return *existing = std::move(value);
    as_object().emplace_back(std::move(key), std::move(value));
    return object_.back().second;
}

bool Value::erase(std::string_view key) {
    if (type_ != Type::object) return false;
    auto it = std::find_if(object_.begin(), object_.end(),
                           [&](const Member& member) { return member.first == key; });
    if (it == object_.end()) return false;
    object_.erase(it);
    return true;
}

bool operator==(const Value& a, const Value& b) {
    if (a.type_ != b.type_) return false;
    switch (a.type_) {
        case Type::null: return true;
        case Type::boolean: return a.boolean_ == b.boolean_;
        case Type::number:
            return a.text_ == b.text_ || a.as_double() == b.as_double();
        case Type::string: return a.text_ == b.text_;
        case Type::array: return a.array_ == b.array_;
        case Type::object: return a.object_ == b.object_;
    }
    return false;
}

std::string quote(std::string_view text) {
    std::string out = "\"";
    out.reserve(text.size() + 2);
    for (unsigned char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
                    out += escaped;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
    return out;
}

void Value::write(std::string& out, int indent, int depth) const {
    auto newline = [&](int level) {
        if (indent <= 0) return;
        out += '\n';
        out.append(static_cast<std::size_t>(indent * level), ' ');
    };
    switch (type_) {
        case Type::null: out += "null"; break;
        case Type::boolean: out += boolean_ ? "true" : "false"; break;
        case Type::number: out += text_; break;
        case Type::string: out += quote(text_); break;
        case Type::array:
            out += '[';
            for (std::size_t i = 0; i < array_.size(); ++i) {
                if (i) out += ',';
                newline(depth + 1);
                array_[i].write(out, indent, depth + 1);
            }
            if (!array_.empty()) newline(depth);
            out += ']';
            break;
        case Type::object:
            out += '{';
            for (std::size_t i = 0; i < object_.size(); ++i) {
                if (i) out += ',';
                newline(depth + 1);
                out += quote(object_[i].first);
                out += indent > 0 ? ": " : ":";
                object_[i].second.write(out, indent, depth + 1);
            }
            if (!object_.empty()) newline(depth);
            out += '}';
            break;
    }
}

std::string Value::dump() const {
    std::string out;
    write(out, 0, 0);
    return out;
}

std::string Value::dump_pretty(int indent) const {
    std::string out;
    write(out, indent, 0);
    return out;
}

namespace {

constexpr int max_depth = 256;

// Reads one JSON document; every access goes through peek/next and the byte reader.
class Reader {
public:
    Reader(std::string_view text, std::string_view source, std::size_t max_values)
        : text_(text), source_(source), values_left_(max_values) {}

    Value document() {
        skip_space();
        Value value = read_value(0);
        skip_space();
        if (!at_end()) fail("unexpected text after the JSON document");
        return value;
    }

private:
    bool at_end() const { return text_.at_end(); }
    char peek() const { return static_cast<char>(text_.peek_u8()); }

    char next() {
        if (at_end()) fail("unexpected end of the JSON document");
        char c = static_cast<char>(text_.u8());
        if (c == '\n') ++line_;
        return c;
    }

    [[noreturn]] void fail(const std::string& message) const {
        throw Error(std::string(source_) + " line " + std::to_string(line_) + ": " + message);
    }

    void skip_space() {
        while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
            next();
    }

    void expect_word(std::string_view word) {
        for (char c : word)
            if (next() != c) fail("invalid literal, expected " + std::string(word));
    }

    Value read_value(int depth) {
        if (depth > max_depth) fail("JSON nested too deeply");
        if (values_left_-- == 0) fail("more JSON values than this document may hold");
        int line = line_;
        Value value;
        switch (peek()) {
            case '{': value = read_object(depth); break;
            case '[': value = read_array(depth); break;
            case '"': value = Value(read_string()); break;
            case 't': expect_word("true"); value = Value(true); break;
            case 'f': expect_word("false"); value = Value(false); break;
            case 'n': expect_word("null"); break;
            default:
                if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
                    value = read_number();
                } else if (at_end()) {
                    fail("unexpected end of the JSON document");
                } else {
                    fail(std::string("unexpected character '") + peek() + "'");
                }
        }
        value.set_line(line);
        return value;
    }

    Value read_object(int depth) {
        next();  // '{'
        Object object;
        skip_space();
        if (peek() == '}') {
            next();
            return Value(std::move(object));
        }
        while (true) {
            skip_space();
            if (peek() != '"') fail("expected a quoted key");
            std::string key = read_string();
            for (const auto& member : object)
                if (member.first == key) fail("duplicate key \"" + key + "\"");
            skip_space();
            if (next() != ':') fail("expected ':' after key \"" + key + "\"");
            skip_space();
            Value value = read_value(depth + 1);
            object.emplace_back(std::move(key), std::move(value));
            skip_space();
            char c = next();
            if (c == '}') break;
            if (c != ',') fail("expected ',' or '}' in object");
        }
        return Value(std::move(object));
    }

    Value read_array(int depth) {
        next();  // '['
        Array array;
        skip_space();
        if (peek() == ']') {
            next();
            return Value(std::move(array));
        }
        while (true) {
            skip_space();
            array.push_back(read_value(depth + 1));
            skip_space();
            char c = next();
            if (c == ']') break;
            if (c != ',') fail("expected ',' or ']' in array");
        }
        return Value(std::move(array));
    }

    Value read_number() {
        ByteReader start = text_;
        if (peek() == '-') next();
        if (peek() == '0') {
            next();
        } else if (peek() >= '1' && peek() <= '9') {
            while (peek() >= '0' && peek() <= '9') next();
        } else {
            fail("invalid number");
        }
        if (peek() == '.') {
            next();
            if (!(peek() >= '0' && peek() <= '9')) fail("invalid number");
            while (peek() >= '0' && peek() <= '9') next();
        }
        if (peek() == 'e' || peek() == 'E') {
            next();
            if (peek() == '+' || peek() == '-') next();
            if (!(peek() >= '0' && peek() <= '9')) fail("invalid number");
            while (peek() >= '0' && peek() <= '9') next();
        }
        return Value::number_from_text(std::string(start.take_text(text_.consumed() - start.consumed())));
    }

    unsigned read_hex4() {
        unsigned code = 0;
        for (int i = 0; i < 4; ++i) {
            char c = next();
            code <<= 4;
            if (c >= '0' && c <= '9') code |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') code |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') code |= static_cast<unsigned>(c - 'A' + 10);
            else fail("invalid \\u escape");
        }
        return code;
    }

    static void append_utf8(std::string& out, unsigned code) {
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

    std::string read_string() {
        next();  // opening quote
        std::string out;
        while (true) {
            // Plain characters in bulk; only quotes, escapes and control characters one by one.
            const std::string_view rest = text_.rest_text();
            const auto run_end = std::find_if(rest.begin(), rest.end(), [](char c) {
                return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
            });
            out += text_.take_text(static_cast<std::size_t>(run_end - rest.begin()));
            char c = next();
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            switch (next()) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned code = read_hex4();
                    if (code >= 0xD800 && code <= 0xDBFF) {
                        if (next() != '\\' || next() != 'u') fail("unpaired surrogate in a string");
                        unsigned low = read_hex4();
                        if (low < 0xDC00 || low > 0xDFFF) fail("unpaired surrogate in a string");
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    } else if (code >= 0xDC00 && code <= 0xDFFF) {
                        fail("unpaired surrogate in a string");
                    }
                    append_utf8(out, code);
                    break;
                }
                default: fail("invalid escape in a string");
            }
        }
    }

    ByteReader text_;
    std::string_view source_;
    int line_ = 1;
    std::size_t values_left_;
};

}  // namespace

Value parse(std::string_view text, std::string_view source, std::size_t max_values) {
    return Reader(text, source, max_values).document();
}

}  // namespace psi::json
