// Expected bytes were produced by Go's encoding/json (json.Unmarshal into interface{}, then
// json.Marshal), except \b and \f: Go 1.22 changed them from \u0008 \u000c to \b \f, and
// tunnel-core builds with Go 1.24.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/json.hpp"

namespace psi::json {
namespace {

std::string canonical(std::string_view text) { return canonical_go(parse(text)); }

TEST(CanonicalJson, SortsKeysBytewiseAtEveryDepth) {
    EXPECT_EQ(canonical(R"({"b":1,"a":{"d":[3,{"z":1,"y":2}],"c":null},"A":true,"é":"x","_":false})"),
              R"({"A":true,"_":false,"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1,"é":"x"})");
}

TEST(CanonicalJson, SortsByUtf8BytesNotByCodePointsOrUtf16) {
    // U+FF61 (EF BD A1) sorts before U+1F600 (F0 9F 98 80) in UTF-8 bytes and code points, but
    // after it in UTF-16 (D83D DE00), the order JCS would use.
    EXPECT_EQ(canonical("{\"\xF0\x9F\x98\x80\":1,\"\xEF\xBD\xA1\":2,\"z\":3}"),
              "{\"z\":3,\"\xEF\xBD\xA1\":2,\"\xF0\x9F\x98\x80\":1}");
}

TEST(CanonicalJson, WritesNoWhitespace) {
    EXPECT_EQ(canonical("{ \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } , \"c\" : [ ] }"), R"({"a":[1,2],"b":{},"c":[]})");
    EXPECT_EQ(canonical("[true, false, null]"), "[true,false,null]");
}

TEST(CanonicalJson, EscapesLikeGoEncodingJson) {
    EXPECT_EQ(canonical(R"("q\" bs\\ nl\n cr\r tab\t c1\u0001 c1f\u001f sl\/ del\u007f e\u00e9 smile\ud83d\ude00")"),
              "\"q\\\" bs\\\\ nl\\n cr\\r tab\\t c1\\u0001 c1f\\u001f sl/ del\x7f e\xC3\xA9 smile\xF0\x9F\x98\x80\"");
}

TEST(CanonicalJson, EscapesHtmlCharactersAndLineSeparators) {
    EXPECT_EQ(canonical(R"("lt< gt> amp& ls\u2028 ps\u2029")"),
              R"("lt\u003c gt\u003e amp\u0026 ls\u2028 ps\u2029")");
    EXPECT_EQ(canonical(R"({"<&>":"a"})"), R"({"\u003c\u0026\u003e":"a"})");
}

TEST(CanonicalJson, WritesBackspaceAndFormFeedShortAsGo122Does) {
    EXPECT_EQ(canonical(R"("\b\f\u0008\u000c\u000b")"), R"("\b\f\b\f\u000b")");
}

TEST(CanonicalJson, ReplacesInvalidUtf8AsGoDecodingDoes) {
    const std::string replacement = "\xEF\xBF\xBD";
    EXPECT_EQ(canonical("\"a\xFF" "b\""), "\"a" + replacement + "b\"");
    EXPECT_EQ(canonical("\"\xC0\x80\""), "\"" + replacement + replacement + "\"");  // overlong
    EXPECT_EQ(canonical("\"\xED\xA0\x80\""), "\"" + replacement + replacement + replacement + "\"");  // surrogate
    EXPECT_EQ(canonical("\"x\xE2\x82\""), "\"x" + replacement + replacement + "\"");  // cut short
    EXPECT_EQ(canonical("\"\xF4\x90\x80\x80\""), "\"" + replacement + replacement + replacement + replacement + "\"");
}

TEST(CanonicalJson, KeysThatBecomeEqualKeepTheLaterValueLikeAGoMap) {
    EXPECT_EQ(canonical("{\"\xFF\":1,\"\xFE\":2}"), "{\"\xEF\xBF\xBD\":2}");
    EXPECT_EQ(canonical("{\"\xFE\":2,\"\xFF\":1}"), "{\"\xEF\xBF\xBD\":1}");
}

TEST(CanonicalJson, WritesNumbersAsGoWritesAFloat64) {
    const std::pair<const char*, const char*> cases[] = {
        {"0", "0"},
        {"-0", "-0"},
        {"-0.0", "-0"},
        {"1.0", "1"},
        {"1.5", "1.5"},
        {"100", "100"},
        {"1e2", "100"},
        {"1E+2", "100"},
        {"-12.50", "-12.5"},
        {"0.1", "0.1"},
        {"4.35", "4.35"},
        {"123456.789", "123456.789"},
        {"1e20", "100000000000000000000"},
        {"1e21", "1e+21"},
        {"999999999999999999999", "1e+21"},
        {"123456789e13", "1.23456789e+21"},
        {"12345678901234567890", "12345678901234567000"},
        {"9007199254740993", "9007199254740992"},
        {"1e-6", "0.000001"},
        {"0.000001", "0.000001"},
        {"0.00001234", "0.00001234"},
        {"0.0000001", "1e-7"},
        {"0.000000999999", "9.99999e-7"},
        {"1.5e-7", "1.5e-7"},
        {"-1.5e-10", "-1.5e-10"},
        {"1e100", "1e+100"},
        {"1e-100", "1e-100"},
        {"5e-324", "5e-324"},
        {"1e-400", "0"},
        {"-1e-400", "-0"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"},
    };
    for (const auto& [text, expected] : cases) EXPECT_EQ(canonical(text), expected) << text;
    EXPECT_EQ(canonical("[1,2.5,-3e-9,{\"b\":1,\"a\":2}]"), R"([1,2.5,-3e-9,{"a":2,"b":1}])");
}

TEST(CanonicalJson, RejectsNumbersOutOfFloat64Range) {
    // Go's decoder fails on these, so nothing with them can have been signed.
    EXPECT_THROW(canonical("1e400"), Error);
    EXPECT_THROW(canonical("[-1e400]"), Error);
}

TEST(CanonicalJson, AcceptsValuesBuiltInCode) {
    Value value;
    value.set("port", 443);
    value.set("ratio", 0.25);
    value.set("big", static_cast<std::uint64_t>(18446744073709551615ull));
    value.set("list", Array{Value("a"), Value(nullptr)});
    EXPECT_EQ(canonical_go(value), R"({"big":18446744073709552000,"list":["a",null],"port":443,"ratio":0.25})");
}

TEST(CanonicalJson, ServerEntryShapedObject) {
    const char* entry = R"({"sshPort": 22, "ipAddress": "192.0.2.7", "capabilities": ["SSH", "OSSH"],
        "meekFrontingAddressesRegex": "[a-z]+\\.example\\.com", "region": "CA", "configurationVersion": 3,
        "webServerPort": "8080", "futureField": {"b": [1, 2.5], "a": "x&y"}})";
    EXPECT_EQ(canonical(entry),
              R"({"capabilities":["SSH","OSSH"],"configurationVersion":3,"futureField":{"a":"x\u0026y","b":[1,2.5]},)"
              R"("ipAddress":"192.0.2.7","meekFrontingAddressesRegex":"[a-z]+\\.example\\.com","region":"CA",)"
              R"("sshPort":22,"webServerPort":"8080"})");
}

}  // namespace
}  // namespace psi::json
