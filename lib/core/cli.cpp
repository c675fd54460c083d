#include "core/cli.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#ifndef PSI_VERSION
#define PSI_VERSION "unknown"
#endif

namespace psi {

void add_common_options(CLI::App& app, CommonOptions& options) {
    app.fallthrough();
    app.set_version_flag("--version", std::string(app.get_name()) + " " + PSI_VERSION);
    app.add_option("--config", options.config_path, "Config file (JSON)")
        ->capture_default_str()
        ->type_name("FILE");
    app.add_flag("--json", options.is_json, "Print one JSON document for scripts");
    app.add_flag("-v,--verbose", options.is_verbose, "Debug output on stderr (may show addresses)");
}

int run_program(CLI::App& app, int argc, char** argv, const CommonOptions& options,
                const std::function<int()>& body) {
    log::set_program(app.get_name());
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& success) {
        return app.exit(success);
    } catch (const CLI::ParseError& error) {
        app.exit(error);
        return exit_status::usage;
    }
    if (options.is_verbose) log::set_level(log::Level::debug);
    try {
        return body();
    } catch (const Error& error) {
        log::error(error.what());
        return error.exit_code();
    } catch (const std::exception& error) {
        log::error(error.what());
        return exit_status::failure;
    }
}

Config load_config_from(const CommonOptions& options) {
    Config config = load_config(options.config_path);
    for (const std::string& warning : config.warnings) log::warning(warning);
    return config;
}

}  // namespace psi
