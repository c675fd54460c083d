#include "core/printable.hpp"

#include <gtest/gtest.h>

namespace psi {
namespace {

TEST(Printable, ControlBytesAndNonAsciiBecomeQuestionMarks) {
    EXPECT_EQ(printable_text("DE"), "DE");
    EXPECT_EQ(printable_text("\x1b]0;owned\x07"), "?]0;owned?");
    EXPECT_EQ(printable_text("a\x1b[2Jb\r\n\x7f\xc2\x9b"), "a?[2Jb?????");
    EXPECT_EQ(printable_text(std::string_view("a\0b", 3)), "a?b");
}

TEST(Printable, AHomepageIsAnHttpsUrlOfPrintableAsciiWithAHost) {
    EXPECT_TRUE(is_homepage_url("https://home.psi.test/"));
    EXPECT_TRUE(is_homepage_url("https://psiphon.ca/en/index.html?a=1&b=%20"));
    EXPECT_TRUE(is_homepage_url("https://h/" + std::string(max_homepage_bytes - 10, 'a')));
    for (const std::string url :
         {"", "https://", "http://home.psi.test/", "javascript:alert(1)", "https:///path", "HTTPS://home.psi.test/",
          "https://home.psi.test/\x1b[2J", "\x1b]0;owned\x07https://home.psi.test/", "https://home psi.test/",
          "https://home.psi.test/\n", "https://h\xc3\xa9.test/"})
        EXPECT_FALSE(is_homepage_url(url)) << url;
    EXPECT_FALSE(is_homepage_url("https://h/" + std::string(max_homepage_bytes - 9, 'a')));
}

}  // namespace
}  // namespace psi
