#include "core/encoding.hpp"

#include <array>
#include <cstdint>

#include "core/byte_reader.hpp"

namespace psi::encoding {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";
constexpr char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// -1 for a character outside the alphabet ('=' included: padding is handled apart).
constexpr std::array<int, 256> base64_values = [] {
    std::array<int, 256> values{};
    values.fill(-1);
    for (int i = 0; i < 64; ++i) values[static_cast<unsigned char>(base64_alphabet[i])] = i;
    return values;
}();

}  // namespace

std::string hex_encode(std::string_view bytes) {
    std::string text;
    text.reserve(bytes.size() * 2);
    for (unsigned char byte : bytes) {
        text += hex_digits[byte >> 4];
        text += hex_digits[byte & 0x0F];
    }
    return text;
}

std::optional<std::string> hex_decode(std::string_view text) {
    if (text.size() % 2 != 0) return std::nullopt;
    std::string bytes;
    bytes.reserve(text.size() / 2);
    ByteReader digits(text);
    while (!digits.at_end()) {
        int high = hex_value(static_cast<char>(digits.u8()));
        int low = hex_value(static_cast<char>(digits.u8()));
        if (high < 0 || low < 0) return std::nullopt;
        bytes += static_cast<char>(high << 4 | low);
    }
    return bytes;
}

std::string base64_encode(std::string_view bytes) {
    std::string text;
    text.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t group = static_cast<unsigned char>(bytes[i]) << 16 |
                              static_cast<unsigned char>(bytes[i + 1]) << 8 |
                              static_cast<unsigned char>(bytes[i + 2]);
        text += base64_alphabet[group >> 18 & 0x3F];
        text += base64_alphabet[group >> 12 & 0x3F];
        text += base64_alphabet[group >> 6 & 0x3F];
        text += base64_alphabet[group & 0x3F];
    }
    std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        std::uint32_t group = static_cast<unsigned char>(bytes[i]) << 16;
        text += base64_alphabet[group >> 18 & 0x3F];
        text += base64_alphabet[group >> 12 & 0x3F];
        text += "==";
    } else if (rest == 2) {
        std::uint32_t group = static_cast<unsigned char>(bytes[i]) << 16 |
                              static_cast<unsigned char>(bytes[i + 1]) << 8;
        text += base64_alphabet[group >> 18 & 0x3F];
        text += base64_alphabet[group >> 12 & 0x3F];
        text += base64_alphabet[group >> 6 & 0x3F];
        text += '=';
    }
    return text;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    const std::size_t padding = text.ends_with("==") ? 2 : text.ends_with('=') ? 1 : 0;

    std::string bytes;
    bytes.reserve(text.size() / 4 * 3);
    ByteReader characters(text);
    while (!characters.at_end()) {
        ByteReader quantum = characters.sub(4);
        std::size_t digits = characters.at_end() ? 4 - padding : 4;
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            group <<= 6;
            const std::uint8_t character = quantum.u8();
            if (j >= digits) continue;  // padding, validated above
            int value = base64_values[character];
            if (value < 0) return std::nullopt;
            group |= static_cast<std::uint32_t>(value);
        }
        bytes += static_cast<char>(group >> 16);
        if (digits >= 3) bytes += static_cast<char>(group >> 8);
        if (digits == 4) bytes += static_cast<char>(group);
        // Canonical form: the bits that padding leaves unused must be zero.
        if (digits == 2 && (group & 0xFFFF) != 0) return std::nullopt;
        if (digits == 3 && (group & 0xFF) != 0) return std::nullopt;
    }
    return bytes;
}

}  // namespace psi::encoding
