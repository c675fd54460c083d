#include "psi/log_tail.hpp"

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "psi/control.hpp"

namespace psi::wrapper {

int show_log(const Config& config, int lines, bool is_follow) {
    const std::string path = run_files(config).log;
    std::ifstream file(path);
    if (!file) throw Error("no log yet (" + path + ")");
    std::deque<std::string> last;
    std::string line;
    while (std::getline(file, line)) {
        last.push_back(line);
        if (static_cast<int>(last.size()) > lines) last.pop_front();
    }
    for (const std::string& kept : last) std::puts(kept.c_str());
    std::fflush(stdout);
    while (is_follow) {
        file.clear();
        while (std::getline(file, line)) std::puts(line.c_str());
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return exit_status::ok;
}

}  // namespace psi::wrapper
