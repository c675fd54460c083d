// libFuzzer target for the byte reader every parser of outside bytes goes through. The input's
// first half is a program of reads (each byte picks one, and its size), run on a reader over the
// second half. Nothing may reach outside the input; a value read is the bytes at the reader's
// position; a short reader stays short and gives nothing; sub-readers hold exactly their bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "core/byte_reader.hpp"

namespace {

using psi::ByteReader;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "byte_reader_fuzz: %s\n", what);
    std::abort();
}

std::uint64_t big_endian(std::span<const std::uint8_t> bytes) {
    std::uint64_t value = 0;
    for (const std::uint8_t byte : bytes) value = value << 8 | byte;
    return value;
}

bool is_within(std::span<const std::uint8_t> part, std::span<const std::uint8_t> whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// One read chosen by `operation` on `reader`, checked against the bytes it started at.
void run(std::uint8_t operation, ByteReader& reader, std::span<const std::uint8_t> input) {
    const bool was_short = reader.is_short();
    const std::size_t before = reader.consumed();
    const auto ahead = input.subspan(before, reader.remaining());
    const std::size_t size = operation >> 3;
    std::size_t wanted = 0;
    std::uint64_t value = 0;
    switch (operation & 7) {
        case 0: wanted = 1; value = reader.u8(); break;
        case 1: wanted = 2; value = reader.u16(); break;
        case 2: wanted = 4; value = reader.u32(); break;
        case 3: wanted = 8; value = reader.u64(); break;
        case 4: {
            wanted = size;
            const auto taken = reader.take(size);
            if (!is_within(taken, input)) fail("take reached outside the input");
            if (!reader.is_short() && (taken.size() != size || taken.data() != ahead.data())) fail("take is not the next bytes");
            break;
        }
        case 5: {
            wanted = size;
            ByteReader part = reader.sub(size);
            if (reader.is_short() != part.is_short()) fail("a sub-reader and its parent disagree about shortness");
            if (!reader.is_short() && part.remaining() != size) fail("a sub-reader does not hold its bytes");
            while (!part.at_end()) part.u8();
            if (part.u8() != 0 || !part.is_short()) fail("a sub-reader reads past its end");
            break;
        }
        case 6: {
            const std::string_view delimiter = size % 2 ? "\r\n" : ",";
            const std::string_view text = reader.take_until(delimiter);
            const std::string_view rest(reinterpret_cast<const char*>(ahead.data()), ahead.size());
            if (reader.is_short()) {
                if (!was_short && rest.find(delimiter) != std::string_view::npos) fail("take_until missed a delimiter");
            } else {
                wanted = text.size() + delimiter.size();
                if (rest.find(delimiter) != text.size()) fail("take_until stopped at the wrong place");
            }
            break;
        }
        default: {
            const std::string_view text = reader.take_until_or_rest(",");
            if (reader.is_short() != was_short) fail("take_until_or_rest marked the reader short");
            wanted = reader.consumed() - before;
            if (text.size() != wanted && text.size() + 1 != wanted) fail("take_until_or_rest lost bytes");
        }
    }
    if (reader.consumed() + reader.remaining() > input.size()) fail("the reader counts past the input");
    if (was_short && !reader.is_short()) fail("a short reader came back");
    if (reader.is_short()) {
        if (reader.remaining() != 0 || !reader.rest().empty()) fail("a short reader still gives bytes");
        if (reader.consumed() != before) fail("a short read moved the reader");
        if (!was_short && (operation & 7) != 6 && wanted <= ahead.size()) fail("a read that fitted went short");
        return;
    }
    if (wanted > ahead.size()) fail("a read past the end did not go short");
    if (reader.consumed() != before + wanted) fail("a read moved the reader by the wrong amount");
    if ((operation & 7) < 4 && value != big_endian(ahead.first(wanted))) fail("an integer is not its bytes, big-endian");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> all(data, size);
    const auto program = all.first(size / 2);
    const auto input = all.subspan(size / 2);
    ByteReader reader(input);
    for (const std::uint8_t operation : program) {
        const std::uint8_t peeked = reader.peek_u8();
        if (peeked != (reader.at_end() ? 0 : input[reader.consumed()])) fail("peek is not the next byte");
        run(operation, reader, input);
    }
    return 0;
}
