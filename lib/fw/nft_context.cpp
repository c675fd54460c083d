#include "fw/nft_context.hpp"

#include <nftables/libnftables.h>

#include "core/error.hpp"

namespace psi::fw {
namespace {

std::string first_line(const std::string& text) {
    auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

}  // namespace

NftContext::NftContext() : context_(nft_ctx_new(NFT_CTX_DEFAULT)) {
    if (!context_) throw Error("cannot create an nftables context");
    nft_ctx_buffer_output(context_);
    nft_ctx_buffer_error(context_);
}

NftContext::~NftContext() { nft_ctx_free(context_); }

std::string NftContext::run(const std::string& script) {
    nft_ctx_output_set_flags(context_, 0);
    int result = nft_run_cmd_from_buffer(context_, script.c_str());
    std::string output = nft_ctx_get_output_buffer(context_);
    std::string errors = nft_ctx_get_error_buffer(context_);
    if (result != 0)
        throw Error("nftables refused the rules: " + (errors.empty() ? "unknown error" : first_line(errors)));
    return output;
}

std::optional<std::string> NftContext::list_table_json(const std::string& family, const std::string& name) {
    nft_ctx_output_set_flags(context_, NFT_CTX_OUTPUT_JSON);
    int result = nft_run_cmd_from_buffer(context_, ("list table " + family + " " + name).c_str());
    nft_ctx_output_set_flags(context_, 0);
    std::string output = nft_ctx_get_output_buffer(context_);
    std::string errors = nft_ctx_get_error_buffer(context_);
    if (result == 0) return output;
    if (errors.find("No such file or directory") != std::string::npos) return std::nullopt;
    throw Error("cannot read the nftables table " + family + " " + name + ": " + first_line(errors));
}

}  // namespace psi::fw
