// Hex and base64, strict: decoders reject anything that is not exactly the canonical form
// (wrong length, stray characters, missing padding, whitespace).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace psi::encoding {

std::string hex_encode(std::string_view bytes);  // lowercase
std::optional<std::string> hex_decode(std::string_view text);  // either case accepted

std::string base64_encode(std::string_view bytes);  // standard alphabet, padded
std::optional<std::string> base64_decode(std::string_view text);  // standard alphabet, padding required

}  // namespace psi::encoding
