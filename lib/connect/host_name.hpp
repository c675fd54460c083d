// A random host name of the shape Psiphon's client presents where it names no real site (the SNI
// of TLS-OSSH, meek's Host): 4 to 15 lowercase letters and .com, .net or .org.
#pragma once

#include <string>

namespace psi::connect {

std::string random_host_name();

}  // namespace psi::connect
