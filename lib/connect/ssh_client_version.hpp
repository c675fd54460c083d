// The SSH identification string psi-connect sends: libssh's own ("SSH-2.0-libssh_0.11.5") names
// psi in clear on plain SSH, so each dial picks an OpenSSH-like one at random, as Psiphon's client
// does (psiphon/common/values: "SSH-2.0-OpenSSH_[7-8].[0-9]").
#pragma once

#include <string>

namespace psi::connect {

std::string random_ssh_client_version();

}  // namespace psi::connect
