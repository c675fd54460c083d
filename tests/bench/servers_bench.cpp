// Times the remote list's path through psi: verify and inflate a signed package, then decode
// its entries. Usage: servers_bench PACKAGE PUBLIC_KEY_BASE64_FILE
#include <chrono>
#include <cstdio>

#include "core/atomic_file.hpp"
#include "servers/auth_package.hpp"
#include "servers/server_entry.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: servers_bench PACKAGE PUBLIC_KEY_BASE64_FILE\n");
        return 2;
    }
    const std::string package = psi::read_file(argv[1]);
    std::string key = psi::read_file(argv[2]);
    key.erase(key.find_last_not_of(" \n\r\t") + 1);

    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const std::string data = psi::servers::open_authenticated_package(package, key);
    const auto verified = clock::now();
    const auto decoded = psi::servers::decode_entry_list(data);
    const auto done = clock::now();
    auto ms = [](auto from, auto to) { return std::chrono::duration<double, std::milli>(to - from).count(); };
    std::printf("%.1f %.1f %zu %zu\n", ms(start, verified), ms(verified, done), decoded.entries.size(), data.size());
    return 0;
}
