// Where the running program is installed: psi finds the tools it runs (psi-fw, psi-tun,
// psi-connect, psi-servers) beside itself, never through PATH.
#pragma once

#include <string>

namespace psi {

// Throws psi::Error when /proc/self/exe cannot be read.
std::string program_directory();

}  // namespace psi
