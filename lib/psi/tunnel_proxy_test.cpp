#include "psi/tunnel_proxy.hpp"

#include <gtest/gtest.h>

namespace psi::wrapper {
namespace {

std::optional<std::string> proxy_of(const std::string& state) { return tunnel_proxy_in(json::parse(state)); }

TEST(TunnelProxy, ATunnelThatIsUpGivesItsSocksProxyOnLoopback) {
    EXPECT_EQ(proxy_of(R"({"running":true,"tunnel":{"up":true,"socksPort":1081}})"), "socks5h://127.0.0.1:1081");
}

TEST(TunnelProxy, NoProxyUnlessPsiRunsWithATunnelUpAndAPort) {
    for (const char* state : {R"({})", R"({"running":false,"tunnel":{"up":true,"socksPort":1081}})",
                              R"({"running":true,"tunnel":{"up":false,"socksPort":1081}})",
                              R"({"running":true,"tunnel":{"up":true}})", R"({"running":true,"tunnel":{}})",
                              R"({"running":true,"tunnel":{"up":"yes","socksPort":1081}})",
                              R"({"running":true,"tunnel":{"up":true,"socksPort":"1081"}})",
                              R"({"running":true,"tunnel":{"up":true,"socksPort":0}})",
                              R"({"running":true,"tunnel":{"up":true,"socksPort":65536}})", R"([])"})
        EXPECT_EQ(proxy_of(state), std::nullopt) << state;
}

TEST(TunnelProxy, NoPsiRunningNoProxy) {
    Config config;
    config.run_directory = "/nonexistent/psi-run";
    EXPECT_EQ(running_tunnel_proxy(config), std::nullopt);
}

}  // namespace
}  // namespace psi::wrapper
