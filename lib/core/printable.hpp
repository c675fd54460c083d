// Text that others wrote (a Psiphon server, through the tunnel user's programs), made safe
// for root's terminal and log, and the homepages psi shows.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace psi {

// `text` with every byte that is not printable ASCII (a control character, DEL, anything
// above 0x7e) as '?': no escape sequence retitles, clears or rewrites a terminal.
std::string printable_text(std::string_view text);

// The homepages a tunnel's handshake may show: at most this many, each an https:// URL of
// printable ASCII without spaces, of at most max_homepage_bytes.
inline constexpr std::size_t max_homepages = 4;
inline constexpr std::size_t max_homepage_bytes = 2048;
bool is_homepage_url(std::string_view url);

}  // namespace psi
