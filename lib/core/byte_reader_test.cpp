#include "core/byte_reader.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "testing/test_support.hpp"

namespace psi {
namespace {

using psi::testing::bytes;

TEST(ByteReader, ReadsBigEndianIntegers) {
    const std::vector<std::uint8_t> input = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                                             0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
    ByteReader reader(input);
    EXPECT_EQ(reader.u8(), 0x01);
    EXPECT_EQ(reader.u16(), 0x0203);
    EXPECT_EQ(reader.u32(), 0x04050607u);
    EXPECT_EQ(reader.u64(), 0x08090a0b0c0d0e0full);
    EXPECT_TRUE(reader.at_end());
    EXPECT_FALSE(reader.is_short());
}

TEST(ByteReader, ReadsLittleEndianWhereAFormatWantsIt) {
    const std::string input = bytes({0x12, 0x34});
    ByteReader reader(input);
    EXPECT_EQ(reader.u16_le(), 0x3412);
}

TEST(ByteReader, ReadsHighBytesWithoutSignExtension) {
    const std::string input = bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    ByteReader reader(input);
    EXPECT_EQ(reader.u8(), 0xff);
    EXPECT_EQ(reader.u16(), 0xffff);
    EXPECT_EQ(reader.u32(), 0xffffffffu);
}

// Short input is "nothing yet", never a partial value, and stays short.
TEST(ByteReader, AReadPastTheEndYieldsZeroAndMarksTheReaderShortForGood) {
    const std::string input = bytes({0x12, 0x34, 0x56});
    ByteReader reader(input);
    EXPECT_EQ(reader.u16(), 0x1234);
    EXPECT_EQ(reader.u16(), 0);
    EXPECT_TRUE(reader.is_short());
    EXPECT_EQ(reader.consumed(), 2u);
    EXPECT_EQ(reader.remaining(), 0u);
    EXPECT_EQ(reader.u8(), 0);  // the byte that was there is not given after a failed read
    EXPECT_TRUE(reader.take(0).empty());
    EXPECT_TRUE(reader.rest().empty());
    EXPECT_TRUE(reader.is_short());
}

TEST(ByteReader, TakesBytesAndText) {
    ByteReader reader(std::string_view("abcdef"));
    const auto first = reader.take(2);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0], 'a');
    EXPECT_EQ(reader.take_text(3), "cde");
    EXPECT_EQ(reader.rest_text(), "f");
    EXPECT_TRUE(reader.take(2).empty());
    EXPECT_TRUE(reader.is_short());
}

TEST(ByteReader, CopiesFixedSizeFieldsAndZeroesThemWhenShort) {
    const std::string input = bytes({1, 2, 3, 4, 5});
    ByteReader reader(input);
    std::array<std::uint8_t, 4> field{9, 9, 9, 9};
    reader.copy_to(field);
    EXPECT_EQ(field, (std::array<std::uint8_t, 4>{1, 2, 3, 4}));
    reader.copy_to(field);
    EXPECT_EQ(field, (std::array<std::uint8_t, 4>{0, 0, 0, 0}));
    EXPECT_TRUE(reader.is_short());
}

TEST(ByteReader, SkipsAndPeeksWithoutMarkingShort) {
    const std::string input = bytes({1, 2, 3});
    ByteReader reader(input);
    reader.skip(2);
    EXPECT_EQ(reader.peek_u8(), 3);
    EXPECT_EQ(reader.consumed(), 2u);
    reader.skip(1);
    EXPECT_EQ(reader.peek_u8(), 0);
    EXPECT_FALSE(reader.is_short());
    reader.skip(1);
    EXPECT_TRUE(reader.is_short());
}

TEST(ByteReader, ACopyIsAPeekOfAnything) {
    const std::string input = bytes({0xab, 0xcd});
    ByteReader reader(input);
    ByteReader look = reader;
    EXPECT_EQ(look.u16(), 0xabcd);
    EXPECT_EQ(reader.consumed(), 0u);
    EXPECT_EQ(reader.u8(), 0xab);
}

TEST(ByteReader, ASubReaderHoldsExactlyItsBytes) {
    const std::string input = bytes({0, 2, 'h', 'i', '!'});
    ByteReader reader(input);
    const std::uint16_t length = reader.u16();
    ByteReader frame = reader.sub(length);
    EXPECT_FALSE(reader.is_short());
    EXPECT_EQ(frame.remaining(), 2u);
    EXPECT_EQ(frame.take_rest_text(), "hi");
    EXPECT_EQ(frame.u8(), 0);
    EXPECT_TRUE(frame.is_short());
    EXPECT_FALSE(reader.is_short());  // the frame's end is not the input's
    EXPECT_EQ(reader.rest_text(), "!");
}

TEST(ByteReader, ASubReaderBeyondTheInputIsShortAndSoIsItsParent) {
    const std::string input = bytes({0, 9, 'h', 'i'});
    ByteReader reader(input);
    ByteReader frame = reader.sub(reader.u16());
    EXPECT_TRUE(reader.is_short());
    EXPECT_TRUE(frame.is_short());
    EXPECT_TRUE(frame.at_end());
}

TEST(ByteReader, TakesUntilADelimiter) {
    ByteReader reader(std::string_view("one\r\ntwo"));
    EXPECT_EQ(reader.take_until("\r\n"), "one");
    EXPECT_EQ(reader.rest_text(), "two");
    EXPECT_EQ(reader.take_until("\r\n"), "");
    EXPECT_TRUE(reader.is_short());  // the line has not ended yet
}

TEST(ByteReader, TakesTheListElementsOfADelimitedList) {
    ByteReader reader(std::string_view("a,,b"));
    EXPECT_EQ(reader.take_until_or_rest(","), "a");
    EXPECT_EQ(reader.take_until_or_rest(","), "");
    EXPECT_EQ(reader.take_until_or_rest(","), "b");
    EXPECT_TRUE(reader.at_end());
    EXPECT_FALSE(reader.is_short());
}

TEST(ByteReader, AnEmptyInputIsAtItsEnd) {
    ByteReader reader(std::string_view{});
    EXPECT_TRUE(reader.at_end());
    EXPECT_EQ(reader.remaining(), 0u);
    EXPECT_TRUE(reader.take_rest().empty());
    EXPECT_FALSE(reader.is_short());
    EXPECT_EQ(reader.u32(), 0u);
    EXPECT_TRUE(reader.is_short());
}

}  // namespace
}  // namespace psi
