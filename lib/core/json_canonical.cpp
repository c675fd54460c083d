// canonical_go: the bytes Go's encoding/json (Go 1.22 and later) writes for a document that Go
// first decoded into interface{}. Server entry signatures are made over these bytes, so every
// rule here is Go's, including the odd ones.
#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/byte_reader.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace psi::json {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";
constexpr std::string_view replacement_character = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at the start of `text`, or 0 when it is not one;
// the same acceptance as Go's utf8.DecodeRune (no overlongs, surrogates or code points past
// U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text) {
    ByteReader sequence(text);
    const std::uint8_t lead = sequence.u8();
    if (lead < 0x80) return 1;
    std::size_t length = 0;
    std::uint8_t low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) low = 0xA0;
        if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) low = 0x90;
        if (lead == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    ByteReader continuation = sequence.sub(length - 1);
    if (sequence.is_short()) return 0;
    const std::uint8_t second = continuation.u8();
    if (second < low || second > high) return 0;
    while (!continuation.at_end()) {
        const std::uint8_t byte = continuation.u8();
        if (byte < 0x80 || byte > 0xBF) return 0;
    }
    return length;
}

// Go's decoder turns each byte that does not start well-formed UTF-8 into U+FFFD.
std::string coerce_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        std::size_t length = utf8_sequence_length(text);
        if (length == 0) {
            out += replacement_character;
            text.remove_prefix(1);
        } else {
            out += text.substr(0, length);
            text.remove_prefix(length);
        }
    }
    return out;
}

// Go's encodeState string escaping with HTML escaping on; `text` is valid UTF-8.
void write_string(std::string& out, std::string_view text) {
    out += '"';
    ByteReader characters(text);
    while (!characters.at_end()) {
        const std::uint8_t c = characters.u8();
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                    out += "\\u00";
                    out += hex_digits[c >> 4];
                    out += hex_digits[c & 0x0F];
                } else if (c == 0xE2 && characters.rest_text().starts_with("\x80\xA8")) {
                    out += "\\u2028";
                    characters.skip(2);
                } else if (c == 0xE2 && characters.rest_text().starts_with("\x80\xA9")) {
                    out += "\\u2029";
                    characters.skip(2);
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

// strconv.AppendFloat(f, 'e' or 'f', -1, 64) as encoding/json's floatEncoder uses it.
void write_number(std::string& out, double number) {
    if (!std::isfinite(number)) throw Error("a JSON number is out of the range of a float64");
    char buffer[64];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, number, std::chars_format::scientific);
    std::string_view scientific(buffer, static_cast<std::size_t>(result.ptr - buffer));

    double magnitude = std::fabs(number);
    if (magnitude != 0 && (magnitude < 1e-6 || magnitude >= 1e21)) {
        // Both write at least two exponent digits; Go then trims "e-07" to "e-7".
        std::string text(scientific);
        std::size_t n = text.size();
        if (n >= 4 && text[n - 4] == 'e' && text[n - 3] == '-' && text[n - 2] == '0') text.erase(n - 2, 1);
        out += text;
        return;
    }

    // Fixed notation with the shortest digits, padded with zeros: 1.2345678901234567e19 is
    // "12345678901234567000" in Go, where to_chars(fixed) would print the exact integer.
    bool is_negative = scientific.front() == '-';
    if (is_negative) scientific.remove_prefix(1);
    std::size_t e = scientific.find('e');
    std::string digits;
    for (char c : scientific.substr(0, e))
        if (c != '.') digits += c;
    std::string_view exponent_text = scientific.substr(e + 1);
    if (!exponent_text.empty() && exponent_text.front() == '+') exponent_text.remove_prefix(1);
    int exponent = 0;
    std::from_chars(exponent_text.data(), exponent_text.data() + exponent_text.size(), exponent);

    if (is_negative) out += '-';
    if (magnitude == 0) {
        out += '0';
        return;
    }
    // The decimal point goes after `point` digits (negative: that many zeros before the digits).
    int point = exponent + 1;
    int count = static_cast<int>(digits.size());
    if (point <= 0) {
        out += '0';
    } else {
        out += digits.substr(0, static_cast<std::size_t>(std::min(point, count)));
        if (point > count) out.append(static_cast<std::size_t>(point - count), '0');
    }
    if (count > point) {
        out += '.';
        if (point < 0) out.append(static_cast<std::size_t>(-point), '0');
        out += digits.substr(static_cast<std::size_t>(std::max(point, 0)));
    }
}

void write_canonical(std::string& out, const Value& value) {
    switch (value.type()) {
        case Type::null: out += "null"; break;
        case Type::boolean: out += value.as_boolean() ? "true" : "false"; break;
        case Type::number: write_number(out, value.as_double()); break;
        case Type::string: write_string(out, coerce_utf8(value.as_string())); break;
        case Type::array: {
            out += '[';
            bool is_first = true;
            for (const Value& element : value.as_array()) {
                if (!is_first) out += ',';
                is_first = false;
                write_canonical(out, element);
            }
            out += ']';
            break;
        }
        case Type::object: {
            // A Go map: keys as decoded (invalid UTF-8 replaced), sorted bytewise; when two
            // keys become equal, the later one in the document wins, as in a map assignment.
            std::vector<std::pair<std::string, const Value*>> members;
            for (const Member& member : value.as_object())
                members.emplace_back(coerce_utf8(member.first), &member.second);
            std::stable_sort(members.begin(), members.end(),
                             [](const auto& a, const auto& b) { return a.first < b.first; });
            out += '{';
            bool is_first = true;
            for (std::size_t i = 0; i < members.size(); ++i) {
                if (i + 1 < members.size() && members[i + 1].first == members[i].first) continue;
                if (!is_first) out += ',';
                is_first = false;
                write_string(out, members[i].first);
                out += ':';
                write_canonical(out, *members[i].second);
            }
            out += '}';
            break;
        }
    }
}

}  // namespace

std::string canonical_go(const Value& value) {
    std::string out;
    write_canonical(out, value);
    return out;
}

}  // namespace psi::json
