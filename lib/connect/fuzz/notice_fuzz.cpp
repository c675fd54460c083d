// libFuzzer target for the notices psi up's supervisor reads (connect/notice.hpp): psi-connect
// writes them as the tunnel user, and root reads them. Nothing may crash, and every notice
// accepted must come back the same from format_notice + parse_notice.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "connect/notice.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "notice_fuzz: %s: %s\n", what, detail.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const std::optional<psi::connect::Notice> notice = psi::connect::parse_notice(line);
    if (!notice) return 0;
    const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1136214245007));
    const std::string written = psi::connect::format_notice(*notice, when);
    const std::optional<psi::connect::Notice> again = psi::connect::parse_notice(written);
    if (!again) fail("a written notice does not read back", written);
    if (again->index() != notice->index() || psi::connect::format_notice(*again, when) != written)
        fail("a notice changed in a round trip", written);
    return 0;
}
