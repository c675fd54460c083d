// The one bounds-checked cursor the proxy parsers (SOCKS5, HTTP proxy head, udpgw) read untrusted
// bytes through. A read either yields its value and advances, or yields nothing and leaves the
// cursor where it was: the input is short and the caller needs more bytes. Whether a value that
// was read is acceptable is the parser's call ("malformed"), never the reader's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace psi::proxy {

class ByteReader {
public:
    explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}

    std::optional<std::uint8_t> u8() {
        const auto taken = take(1);
        if (!taken) return std::nullopt;
        return static_cast<std::uint8_t>(taken->front());
    }

    std::optional<std::uint16_t> u16_be() {
        const auto taken = take(2);
        if (!taken) return std::nullopt;
        return static_cast<std::uint16_t>(byte_at(*taken, 0) << 8 | byte_at(*taken, 1));
    }

    std::optional<std::uint16_t> u16_le() {
        const auto taken = take(2);
        if (!taken) return std::nullopt;
        return static_cast<std::uint16_t>(byte_at(*taken, 1) << 8 | byte_at(*taken, 0));
    }

    // The next `count` bytes.
    std::optional<std::string_view> take(std::size_t count) {
        if (count > remaining()) return std::nullopt;
        const std::string_view taken = bytes_.substr(position_, count);
        position_ += count;
        return taken;
    }

    // The bytes before the next `delimiter`; the delimiter is consumed too.
    std::optional<std::string_view> take_until(std::string_view delimiter) {
        const std::size_t found = rest().find(delimiter);
        if (found == std::string_view::npos) return std::nullopt;
        const std::string_view taken = rest().substr(0, found);
        position_ += found + delimiter.size();
        return taken;
    }

    std::string_view rest() const { return bytes_.substr(position_); }
    std::size_t remaining() const { return bytes_.size() - position_; }
    std::size_t consumed() const { return position_; }

private:
    static unsigned byte_at(std::string_view bytes, std::size_t index) {
        return static_cast<unsigned char>(bytes.at(index));
    }

    std::string_view bytes_;
    std::size_t position_ = 0;
};

}  // namespace psi::proxy
