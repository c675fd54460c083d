// Running a system tool (such as ip) without a shell: argv as given, output captured.
#pragma once

#include <string>
#include <vector>

namespace psi {

struct ProcessResult {
    int exit_code = -1;
    std::string output;  // stdout
    std::string errors;  // stderr
};

// `input`: the tool's standard input (a descriptor the caller keeps); -1 for /dev/null.
ProcessResult run_process(const std::vector<std::string>& argv, int input = -1);

// run_process that throws psi::Error "<argv>: <first line of stderr>" on a non-zero exit.
std::string run_checked(const std::vector<std::string>& argv);

}  // namespace psi
