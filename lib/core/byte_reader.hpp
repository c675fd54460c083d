// The one bounds-checked cursor every parser of outside bytes reads through: packets, udpgw
// frames, SOCKS5, HTTP heads, DNS replies, SSH key blobs, server lists, JSON (after OpenSSH's
// sshbuf). One rule: a read past the end yields zeros (an empty span or text) and marks the
// reader short, and every read after it yields nothing either. A parser reads a whole header and
// asks is_short() once, or asks after each field when where the input ended matters ("need more"
// against "malformed"). Whether a value read is acceptable is the parser's call, never the reader's.
// Header-only, no allocation, no exceptions: the packet engine parses every packet through it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace psi {

class ByteReader {
public:
    ByteReader() = default;
    explicit ByteReader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
    explicit ByteReader(std::string_view text)
        : bytes_(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()) {}

    // Integers in network byte order (big-endian); u16_le for the few formats that are not.
    std::uint8_t u8() {
        const auto taken = take(1);
        return taken.empty() ? 0 : taken[0];
    }
    std::uint16_t u16() { return big_endian<std::uint16_t>(); }
    std::uint32_t u32() { return big_endian<std::uint32_t>(); }
    std::uint64_t u64() { return big_endian<std::uint64_t>(); }
    std::uint16_t u16_le() {
        const auto taken = take(2);
        return taken.empty() ? 0 : static_cast<std::uint16_t>(taken[1] << 8 | taken[0]);
    }

    // The next `count` bytes, as bytes or as text.
    std::span<const std::uint8_t> take(std::size_t count) {
        if (count > remaining()) {
            stop();
            return {};
        }
        const auto taken = bytes_.subspan(position_, count);
        position_ += count;
        return taken;
    }
    std::string_view take_text(std::size_t count) { return text_of(take(count)); }

    // Fills `out` with the next out.size() bytes (zeros when short).
    void copy_to(std::span<std::uint8_t> out) {
        const auto taken = take(out.size());
        if (taken.size() == out.size()) std::copy(taken.begin(), taken.end(), out.begin());
        else std::fill(out.begin(), out.end(), std::uint8_t{0});
    }

    void skip(std::size_t count) { take(count); }

    // A reader of the next `count` bytes, which this one moves past; short when they are not all here.
    ByteReader sub(std::size_t count) {
        ByteReader part(take(count));
        if (is_short_) part.stop();
        return part;
    }

    // The text before the next `delimiter`, which is read too; short when no delimiter follows
    // (a line that has not ended yet).
    std::string_view take_until(std::string_view delimiter) {
        const std::size_t found = rest_text().find(delimiter);
        if (found == std::string_view::npos) {
            stop();
            return {};
        }
        const std::string_view taken = take_text(found);
        skip(delimiter.size());
        return taken;
    }

    // The same, but the last element of a list has no delimiter after it: all the rest, then.
    std::string_view take_until_or_rest(std::string_view delimiter) {
        const std::size_t found = rest_text().find(delimiter);
        if (found == std::string_view::npos) return take_text(remaining());
        const std::string_view taken = take_text(found);
        skip(delimiter.size());
        return taken;
    }

    std::span<const std::uint8_t> take_rest() { return take(remaining()); }
    std::string_view take_rest_text() { return take_text(remaining()); }

    // Looks without reading: a peek never marks the reader short. 0 at the end.
    std::uint8_t peek_u8() const { return position_ < bytes_.size() ? bytes_[position_] : 0; }
    std::span<const std::uint8_t> rest() const { return bytes_.subspan(position_); }
    std::string_view rest_text() const { return text_of(rest()); }

    std::size_t remaining() const { return bytes_.size() - position_; }
    std::size_t consumed() const { return position_; }
    bool at_end() const { return position_ == bytes_.size(); }
    bool is_short() const { return is_short_; }

private:
    static std::string_view text_of(std::span<const std::uint8_t> bytes) {
        return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    }

    // A short reader ends where it stopped: nothing after the failed read is left to give.
    void stop() {
        is_short_ = true;
        bytes_ = bytes_.first(position_);
    }

    template <typename Integer>
    Integer big_endian() {
        const auto taken = take(sizeof(Integer));
        if (taken.size() != sizeof(Integer)) return 0;
        Integer value = 0;
        for (std::size_t i = 0; i < sizeof(Integer); ++i) value = static_cast<Integer>(value << 8 | taken[i]);
        return value;
    }

    std::span<const std::uint8_t> bytes_;
    std::size_t position_ = 0;
    bool is_short_ = false;
};

}  // namespace psi
