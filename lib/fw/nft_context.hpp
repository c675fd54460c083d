// libnftables, owned: one context, output and errors captured rather than printed.
#pragma once

#include <optional>
#include <string>

struct nft_ctx;

namespace psi::fw {

class NftContext {
public:
    NftContext();
    ~NftContext();
    NftContext(const NftContext&) = delete;
    NftContext& operator=(const NftContext&) = delete;

    // Runs an nft script as one transaction; returns what nft printed. Throws psi::Error
    // with nft's own message when anything in it is refused (then nothing was changed).
    std::string run(const std::string& script);

    // The table as libnftables JSON, or nullopt when it does not exist.
    std::optional<std::string> list_table_json(const std::string& family, const std::string& name);

private:
    nft_ctx* context_;
};

}  // namespace psi::fw
