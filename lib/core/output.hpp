// Data for scripts goes to stdout: one JSON document per call.
#pragma once

#include "core/json.hpp"

namespace psi {

void print_json(const json::Value& document);

}  // namespace psi
