#include "core/json.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace psi::json {
namespace {

TEST(Json, ParsesEveryTypeAndKeepsKeyOrder) {
    Value value = parse(R"({"b": [1, -2.5e3, true, false, null], "a": "x\u00e9\n"})");
    ASSERT_TRUE(value.is_object());
    EXPECT_EQ(value.as_object()[0].first, "b");
    EXPECT_EQ(value.as_object()[1].first, "a");
    const Array& array = value.find("b")->as_array();
    EXPECT_EQ(array[0].as_integer(), 1);
    EXPECT_DOUBLE_EQ(array[1].as_double(), -2500.0);
    EXPECT_TRUE(array[2].as_boolean());
    EXPECT_TRUE(array[4].is_null());
    EXPECT_EQ(value.find("a")->as_string(), "x\xc3\xa9\n");
}

TEST(Json, RoundTripsCompactText) {
    const std::string text = R"({"z":1,"a":[{"k":"v"},[]],"n":-0.5,"s":"q\"\\"})";
    EXPECT_EQ(parse(text).dump(), text);
}

TEST(Json, RecordsLinesOfValues) {
    Value value = parse("{\n  \"one\": 1,\n\n  \"two\": \"2\"\n}");
    EXPECT_EQ(value.find("one")->line(), 2);
    EXPECT_EQ(value.find("two")->line(), 4);
}

TEST(Json, ErrorsNameSourceAndLine) {
    try {
        parse("{\n\"a\": 1,\n\"b\": }", "psi.conf");
        FAIL() << "parse accepted bad JSON";
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "psi.conf line 3: unexpected character '}'");
    }
}

TEST(Json, RejectsMalformedDocuments) {
    for (const char* text : {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "\"\\ud800\"", "tru",
                             "{\"a\":1,\"a\":2}", "[1] 2", "\"a\nb\""}) {
        EXPECT_THROW(parse(text), Error) << text;
    }
}

TEST(Json, BoundsNestingDepth) {
    EXPECT_THROW(parse(std::string(100000, '[')), Error);
    EXPECT_NO_THROW(parse(std::string(100, '[') + std::string(100, ']')));
}

TEST(Json, ValueLimitStopsLargeDocumentsEarly) {
    EXPECT_NO_THROW(parse(R"({"a":"x","b":"y"})", "input", 3));
    EXPECT_THROW(parse(R"({"a":"x","b":[1,2]})", "input", 3), Error);
}

TEST(Json, DecodesSurrogatePairs) {
    EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "\xf0\x9f\x98\x80");
}

TEST(Json, SetReplacesInPlaceAndEraseRemoves) {
    Value value = parse(R"({"a":1,"b":2})");
    value.set("a", "one");
    value.set("c", 3);
    EXPECT_EQ(value.dump(), R"({"a":"one","b":2,"c":3})");
    EXPECT_TRUE(value.erase("b"));
    EXPECT_FALSE(value.erase("b"));
    EXPECT_EQ(value.dump(), R"({"a":"one","c":3})");
}

TEST(Json, WrongTypeAccessThrows) {
    Value value = parse(R"({"a":"1"})");
    EXPECT_THROW(value.find("a")->as_integer(), Error);
    EXPECT_THROW(parse("1.5").as_integer(), Error);
}

TEST(Json, PrettyOutputIsParsedBack) {
    Value value = parse(R"({"a":[1,{"b":null}],"c":{}})");
    EXPECT_EQ(parse(value.dump_pretty()), value);
    EXPECT_EQ(quote("\x01"), "\"\\u0001\"");
}

TEST(Json, GetGivesTheMemberOfTheWantedTypeOrTheFallback) {
    const Value document = parse(R"({"name": "psi", "on": true, "count": 7, "ratio": 1.5,
        "big": 1e30, "list": ["a", 1, "b"]})", "test");
    EXPECT_EQ(document.get("name", ""), "psi");
    EXPECT_EQ(document.get("count", "none"), "none");
    EXPECT_EQ(document.get("absent", std::string("x")), "x");
    EXPECT_TRUE(document.get("on", false));
    EXPECT_FALSE(document.get("name", false));
    EXPECT_EQ(document.get("count", std::int64_t{0}), 7);
    EXPECT_EQ(document.get("ratio", std::int64_t{-1}), -1);
    EXPECT_EQ(document.get("big", std::int64_t{-1}), -1);
    EXPECT_DOUBLE_EQ(document.get("ratio", 0.0), 1.5);
    EXPECT_EQ(document.get_strings("list"), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(document.get_strings("name").empty());
    EXPECT_EQ(Value(Array{}).get("name", "none"), "none");
}

}  // namespace
}  // namespace psi::json
