#include "core/printable.hpp"

namespace psi {
namespace {

bool is_printable(char byte) { return byte >= 0x20 && byte <= 0x7e; }

}  // namespace

std::string printable_text(std::string_view text) {
    std::string result(text);
    for (char& byte : result)
        if (!is_printable(byte)) byte = '?';
    return result;
}

bool is_homepage_url(std::string_view url) {
    constexpr std::string_view scheme = "https://";
    if (url.size() <= scheme.size() || url.size() > max_homepage_bytes || !url.starts_with(scheme)) return false;
    for (char byte : url)
        if (!is_printable(byte) || byte == ' ') return false;
    return url[scheme.size()] != '/';  // a host comes first
}

}  // namespace psi
