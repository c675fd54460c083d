// psi-diagnose's report: every check in order, printed one per line with the fix for each
// failure, or as one JSON document.
#pragma once

#include "core/config.hpp"
#include "fw/leak_probe.hpp"

namespace psi::diagnose {

struct ReportOptions {
    fw::ProbeTargets probe_targets;
    bool is_without_probes = false;
    bool is_json = false;
};

// Exit status: 0 every check passed, 3 a check failed.
int report_diagnosis(const Config& config, const ReportOptions& options);

}  // namespace psi::diagnose
