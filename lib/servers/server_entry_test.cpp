#include "servers/server_entry.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cctype>
#include <memory>

#include "core/encoding.hpp"
#include "core/error.hpp"

namespace psi::servers {
namespace {

using encoding::hex_encode;

// A real ssh-rsa 2048 host key (ssh-keygen -t rsa -b 2048), as it appears in k.pub.
const std::string rsa_host_key =
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQDN3vpUAZgNDLEPRxz+We9OSUoqBmGN4cqLNM3hA6d3alrrQ6BtQSG5NFi9kMOaXGJgOMGsxnZzs4VBjuOr0"
    "xc8jiVgkocpsIbjj2xoXCkcbzkVnQb0KaA8mPYiQ8vMgsruGukGnegCfuCbl3wM+nYhJ8QlZJvcquzeLS/FzXOrRRnRcrctPHuUpCnD6JZjWzAcRD"
    "q+gqUzv/VJsabb6Vkm/2PS/h+n/GXeGtCofh6YnAT4WdtKrD6ihZlGOi/dspHOAxHUUjxYTYo8fQZHHceUYE8A9L3aW/TdfZewPqKtcfE9qAha+Z+"
    "ydFyrLfhvoGhuIshQt7FD+0aRNzf+G1sj";
const std::string ed25519_host_key = "AAAAC3NzaC1lZDI1NTE5AAAAIHjhPdC1fLfUhWxcv1ajyMXlStF4f3gWXoAmkuQcUVZc";
const std::string ecdsa_host_key =
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKPJDYocOPphSPvO/yFMMzXhah+PpWV97ewMbVKMk2OtfPqY3EczDG8oW9swtI99"
    "GzgMf/k1cid1HBTmbwm1QZI=";
const std::string dss_host_key =
    "AAAAB3NzaC1kc3MAAACBAIXwfv08pK4T0ei2i0VhZw8CyqKUPtCDVOUS70JsYJbIHLhF9nvnMn7jnctqjYk7imc3iyL1948No/KK8VZVOYuZVIhcmXEs"
    "4NcC4FzJ9VhQCh+L18brDQCxmOgycireZG4D9htPlhWpZ1xpPPGV/WgPQOFrXgDMplW/+NL6iH+zAAAAFQDO6NPtq1TARkiJ+oScdufMopKq8wAAAIBT"
    "1YT12mtdQnvpx8TplGzzIeQZb1gvd2FEYyk4ep0wGYD3EGz2DM3GGcDolf5WTui00E+zUsMjqxvqn06khsmb13fVzwciVbZDywjhopCmn1Ymw3rvxHpY"
    "b2aFwHy/1OrZXTukNu8s56Va1cCNrIZJCnb7yiPpEY9OP8hXcjdtygAAAIARzqC2FgIZ1irB5PuVUvrEflzElUyag5TEEXJBLFkVQlMYYhDAgvG1ud9M"
    "OmQQ0CqVyL9aACONE+maWksDqkJ4TgnTHD2IJOBiWJdIl2JnIf+1qkuPoeDuG2IVjDS8aLYXmaqbNh4tPzU/hXCTN4CmQWQkZjszk4bFmFHyHTrM0A==";

// A self-signed P-256 certificate for the legacy web API, base64 DER.
const std::string web_server_certificate =
    "MIIBfzCCASWgAwIBAgIUAl5KAqnRW3PHdh4VZ0BmvKBTorowCgYIKoZIzj0EAwIwFTETMBEGA1UEAwwKMTkyLjAuMi4xMDAeFw0yNjExMjMwMjM1MT"
    "BaFw0zNjExMjAwMjM1MTBaMBUxEzARBgNVBAMMCjE5Mi4wLjIuMTAwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARRGdeYVh3PARky7VVg5r+0VRQ0"
    "+UKHBokkxw90y670YoqwwBCSwRo32RVXg3z0mlk2MOjgzOxiqkujtokBPC/yo1MwUTAdBgNVHQ4EFgQUf+FDRgxut4hYuLVNKVs+Kik9TJkwHwYDVR"
    "0jBBgwFoAUf+FDRgxut4hYuLVNKVs+Kik9TJkwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBAhxZf3QNd7+l5rMDGTuYc6SeGW9d2"
    "Y/J2jZNhE9jpZgIhAPAkntx41P3HqwowHr0dUNaHcAleQhq9lNyE/EYhfotj";

const std::string web_server_secret = "d8da730becf57288a983d7f0a7da9d61b387aac9ad48f2a069f60452992ab321";

// An entry shaped like docs/protocol.md §1.2, compact as Go writes it, with a field from the future.
const std::string fixture_json =
    R"({"ipAddress":"192.0.2.10","webServerPort":"8080","webServerSecret":")" + web_server_secret +
    R"(","webServerCertificate":")" + web_server_certificate +
    R"(","sshPort":22,"sshUsername":"psiphon_cf77aef7e151e1a9",)"
    R"("sshPassword":"19754a9ce60ba1730cd46389fb3bde85dbab95f83154f68dff609a4abd6f1183","sshHostKey":")" +
    rsa_host_key +
    R"(","sshObfuscatedPort":443,"sshObfuscatedKey":"c798177652b20651dfd56d4deb3f1dc5045a2cb299488d721f2b5c43940d7907",)"
    R"("capabilities":["handshake","SSH","OSSH","ssh-api-requests"],"region":"CA","configurationVersion":1,)"
    R"("futureField":{"a":[1,2.5]}})";

const std::string fixture_prefix =
    "192.0.2.10 8080 " + web_server_secret + " " + web_server_certificate + " ";

std::string line_of(std::string_view text) { return hex_encode(text); }

json::Value fixture_fields() { return json::parse(fixture_json); }

// The fixture with one field replaced by `json_text`, or removed when `json_text` is empty.
std::string fixture_line_with(const std::string& name, const std::string& json_text) {
    json::Value fields = fixture_fields();
    if (json_text.empty()) fields.erase(name);
    else fields.set(name, json::parse(json_text));
    return line_of("0 0 0 0 " + fields.dump());
}

// The one reason decode_entry_list counts a bad line under.
std::string skip_reason(const std::string& line) {
    DecodedList list = decode_entry_list(line);
    EXPECT_TRUE(list.entries.empty());
    if (list.skipped.size() != 1) return "(" + std::to_string(list.skipped.size()) + " reasons)";
    EXPECT_EQ(list.skipped.begin()->second, 1u);
    return list.skipped.begin()->first;
}

std::string ssh_string(std::string_view bytes) {
    std::string out;
    auto length = static_cast<std::uint32_t>(bytes.size());
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(length >> shift & 0xFF);
    out += bytes;
    return out;
}

std::string host_key_json(std::string_view blob) { return "\"" + encoding::base64_encode(blob) + "\""; }

// --- the line codec ---

TEST(ServerEntry, DecodesTheRealisticFixture) {
    ServerEntry entry = decode_entry_line(line_of(fixture_prefix + fixture_json));
    EXPECT_EQ(entry.ip_address(), "192.0.2.10");
    EXPECT_EQ(entry.region(), "CA");
    EXPECT_EQ(entry.configuration_version(), 1);
    EXPECT_EQ(entry.capabilities(), (std::vector<std::string>{"handshake", "SSH", "OSSH", "ssh-api-requests"}));
    EXPECT_TRUE(entry.has_capability("ssh-api-requests"));
    EXPECT_FALSE(entry.has_capability("QUIC"));
    EXPECT_EQ(entry.dial_port("OSSH"), 443);
    EXPECT_EQ(entry.dial_port("SSH"), 22);
    EXPECT_EQ(entry.protocols({"OSSH", "QUIC-OSSH", "SSH", "TLS-OSSH"}), (std::vector<std::string>{"OSSH", "SSH"}));
    EXPECT_EQ(entry.fields.find("webServerPort")->as_string(), "8080");
    EXPECT_EQ(*entry.fields.find("futureField"), json::parse(R"({"a": [1, 2.5]})"));
}

TEST(ServerEntry, RoundTripKeepsTheJsonByteForByte) {
    const std::string line = line_of(fixture_prefix + fixture_json);
    ServerEntry entry = decode_entry_line(line);
    EXPECT_EQ(encode_entry_line(entry), line);
    EXPECT_EQ(decode_entry_line(encode_entry_line(entry)).fields.dump(), fixture_json);
    // Key order is the document's, not sorted.
    EXPECT_EQ(entry.fields.as_object().front().first, "ipAddress");
    EXPECT_EQ(entry.fields.as_object().back().first, "futureField");
}

TEST(ServerEntry, KeepsUnknownFieldsThroughARoundTrip) {
    const std::string json = R"({"ipAddress":"192.0.2.1","zeta":[{"deep":{"er":null}}],"alpha":-0.5,"mid":"\u003c"})";
    ServerEntry entry = decode_entry_line(line_of("0 0 0 0 " + json));
    EXPECT_EQ(entry.fields.dump(), R"({"ipAddress":"192.0.2.1","zeta":[{"deep":{"er":null}}],"alpha":-0.5,"mid":"<"})");
    EXPECT_EQ(decode_entry_line(encode_entry_line(entry)).fields, entry.fields);
}

TEST(ServerEntry, WritesThePlaceholderPrefixWithoutACertificate) {
    json::Value fields = fixture_fields();
    fields.erase("webServerCertificate");
    const std::string expected = line_of("0 0 0 0 " + fields.dump());
    EXPECT_EQ(encode_entry_line(ServerEntry{fields}), expected);
    fields.set("webServerCertificate", "");
    EXPECT_EQ(encoding::hex_decode(encode_entry_line(ServerEntry{fields}))->substr(0, 9), "0 0 0 0 {");
}

TEST(ServerEntry, WritesThePlaceholderPrefixWhenAPrefixValueHoldsASpace) {
    json::Value fields = fixture_fields();
    fields.set("webServerSecret", "two words");
    ServerEntry entry{fields};
    const std::string line = encode_entry_line(entry);
    EXPECT_EQ(encoding::hex_decode(line)->substr(0, 8), "0 0 0 0 ");
    EXPECT_EQ(decode_entry_line(line).fields, fields);
}

TEST(ServerEntry, SplitsIntoAtMostFiveParts) {
    const std::string json =
        R"({ "ipAddress" : "192.0.2.1", "note": "a b  c   d e f g", "list": [ 1 , 2 ] })";
    ServerEntry entry = decode_entry_line(line_of("0 0 0 0 " + json));
    EXPECT_EQ(entry.fields.find("note")->as_string(), "a b  c   d e f g");
    EXPECT_EQ(entry.fields.dump(), R"({"ipAddress":"192.0.2.1","note":"a b  c   d e f g","list":[1,2]})");
}

TEST(ServerEntry, IgnoresThePrefixValues) {
    ServerEntry entry = decode_entry_line(line_of("203.0.113.9 1 x y " + fixture_json));
    EXPECT_EQ(entry.ip_address(), "192.0.2.10");
}

TEST(ServerEntry, AcceptsUppercaseHex) {
    std::string line = line_of("0 0 0 0 " + fixture_json);
    for (char& c : line) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(decode_entry_line(line).ip_address(), "192.0.2.10");
}

TEST(ServerEntry, LineErrorsHaveShortReasons) {
    EXPECT_EQ(skip_reason("this is not hex"), "not hex");
    EXPECT_EQ(skip_reason(line_of("0 0 0 0 {}").substr(1)), "not hex");  // odd length
    EXPECT_EQ(skip_reason(line_of("0 0 0 0")), "no JSON part");
    EXPECT_EQ(skip_reason(line_of("0 0 0 {}")), "no JSON part");
    EXPECT_EQ(skip_reason(line_of("0 0 0 0 " + fixture_json.substr(0, 100))), "invalid JSON");
    EXPECT_EQ(skip_reason(line_of("0 0 0 0 ")), "invalid JSON");
    EXPECT_EQ(skip_reason(line_of("0 0 0 0 [\"192.0.2.1\"]")), "JSON is not an object");
    EXPECT_EQ(skip_reason(line_of("0 0 0 0 null")), "JSON is not an object");
}

TEST(ServerEntry, InvalidJsonMessageSaysWhere) {
    try {
        decode_entry_line(line_of("0 0 0 0 {\"ipAddress\": }"));
        FAIL() << "accepted invalid JSON";
    } catch (const Error& error) {
        EXPECT_EQ(std::string(error.what()).rfind("invalid JSON: ", 0), 0u) << error.what();
        EXPECT_NE(std::string(error.what()).find("unexpected character"), std::string::npos) << error.what();
    }
}

// --- validation ---

TEST(ServerEntryValidation, RejectsBadIpAddresses) {
    for (const char* value : {R"("not-an-ip")", R"("")", "17", R"("192.0.2.256")", R"("01.2.3.4")",
                              R"("192.0.2.1 ")", R"("fe80::1%eth0")", R"("192.0.2.1\u0000x")", R"("1.2.3")"})
        EXPECT_EQ(skip_reason(fixture_line_with("ipAddress", value)), "ipAddress is not an IP address") << value;
    EXPECT_EQ(skip_reason(fixture_line_with("ipAddress", "")), "ipAddress is not an IP address");
}

TEST(ServerEntryValidation, AcceptsIpv4AndIpv6) {
    for (const char* value : {R"("2001:db8::1")", R"("::ffff:192.0.2.1")", R"("10.0.0.1")"})
        EXPECT_NO_THROW(decode_entry_line(fixture_line_with("ipAddress", value))) << value;
}

TEST(ServerEntryValidation, RejectsBadPorts) {
    for (const char* value : {"70000", "65536", "-1", "22.0", "2.2e1", R"("22")", "true"})
        EXPECT_EQ(skip_reason(fixture_line_with("sshPort", value)), "sshPort is not a port number") << value;
    EXPECT_EQ(skip_reason(fixture_line_with("meekServerPort", "99999")), "meekServerPort is not a port number");
    for (const char* value : {"8080", R"("80a")", R"("70000")", R"("-1")", R"(" 80")"})
        EXPECT_EQ(skip_reason(fixture_line_with("webServerPort", value)), "webServerPort is not a port number")
            << value;
    // A field this client does not know: checked, but its name stays out of the reason.
    EXPECT_EQ(skip_reason(fixture_line_with("someFuturePort", R"("x")")), "a *Port field is not a port number");
}

TEST(ServerEntryValidation, AcceptsZeroAndEmptyAsAbsent) {
    json::Value fields = fixture_fields();
    fields.set("meekServerPort", 0);
    fields.set("sshObfuscatedQUICPort", 0);
    fields.set("webServerPort", "");
    fields.set("sshObfuscatedKey", "");
    fields.set("sshHostKey", "");
    fields.set("region", "");
    fields.set("sshObfuscatedConjurePort", nullptr);
    fields.set("configurationVersion", nullptr);
    fields.set("capabilities", json::Array{json::Value("QUIC"), json::Value("OSSH")});
    ServerEntry entry = decode_entry_line(line_of("0 0 0 0 " + fields.dump()));
    EXPECT_EQ(entry.configuration_version(), 0);
    EXPECT_EQ(entry.dial_port("QUIC-OSSH"), std::nullopt);
    EXPECT_EQ(entry.protocols({"QUIC-OSSH", "OSSH"}), (std::vector<std::string>{"OSSH"}));
}

TEST(ServerEntryValidation, AcceptsEveryHostKeyType) {
    for (const std::string& key : {rsa_host_key, ed25519_host_key, ecdsa_host_key, dss_host_key})
        EXPECT_NO_THROW(decode_entry_line(fixture_line_with("sshHostKey", "\"" + key + "\""))) << key;
}

TEST(ServerEntryValidation, RejectsMalformedHostKeys) {
    const std::string ed25519_key(32, 'k');
    const std::string rsa_blob = *encoding::base64_decode(rsa_host_key);
    const std::string bad_keys[] = {
        R"("!!not*base64!!")",
        "12",
        host_key_json(rsa_blob.substr(0, rsa_blob.size() - 1)),           // n cut short
        host_key_json(rsa_blob + "x"),                                    // left over
        host_key_json(ssh_string("ssh-rsa") + ssh_string(std::string("\x01\x00\x01", 3))),  // no n
        host_key_json(ssh_string("ssh-rsa") + ssh_string("") + ssh_string("\x01")),  // empty e
        host_key_json(ssh_string("ssh-rsa") + ssh_string("\x01") + ssh_string("\x80")),  // negative n
        host_key_json(ssh_string("ssh-ed25519") + ssh_string(ed25519_key.substr(1))),  // 31 bytes
        host_key_json(ssh_string("ssh-ed25519") + ssh_string(ed25519_key) + ssh_string("")),
        host_key_json(ssh_string("ecdsa-sha2-nistp256") + ssh_string("nistp384") + ssh_string("\x04point")),
        host_key_json(ssh_string("ecdsa-sha2-nistp256") + ssh_string("nistp256") + ssh_string("")),
        host_key_json(ssh_string("ssh-dss") + ssh_string("\x01") + ssh_string("\x01") + ssh_string("\x01")),
        host_key_json(ssh_string("ssh-xyz") + ssh_string(ed25519_key)),
        host_key_json(std::string("\xff\xff\xff\xff", 4) + "ssh-rsa"),  // length past the end
        host_key_json(std::string(3, '\0')),  // no room for a length
    };
    for (const std::string& key : bad_keys)
        EXPECT_EQ(skip_reason(fixture_line_with("sshHostKey", key)), "sshHostKey is not a valid SSH public key")
            << key;
}

TEST(ServerEntryValidation, RejectsBadObfuscationKeys) {
    for (const std::string& value : {"\"" + std::string(129, 'a') + "\"", std::string(R"("tab\there")"),
                                     std::string(R"("caf\u00e9")"), std::string("5")})
        EXPECT_EQ(skip_reason(fixture_line_with("sshObfuscatedKey", value)),
                  "sshObfuscatedKey is not 1 to 128 printable ASCII characters")
            << value;
    EXPECT_NO_THROW(decode_entry_line(fixture_line_with("sshObfuscatedKey", "\"" + std::string(128, '~') + "\"")));
}

TEST(ServerEntryValidation, RejectsBadCapabilitiesRegionAndVersion) {
    for (const char* value : {R"("SSH")", R"(["SSH", 1])", R"({"SSH": true})"})
        EXPECT_EQ(skip_reason(fixture_line_with("capabilities", value)), "capabilities is not an array of strings")
            << value;
    for (const char* value : {R"("ca")", R"("CAN")", R"("C")", "1", R"("C1")"})
        EXPECT_EQ(skip_reason(fixture_line_with("region", value)), "region is not two uppercase letters") << value;
    for (const char* value : {"-1", "1.5", R"("1")", "1e3", "99999999999999999999"})
        EXPECT_EQ(skip_reason(fixture_line_with("configurationVersion", value)),
                  "configurationVersion is not a whole number >= 0")
            << value;
}

TEST(ServerEntryValidation, ValidateEntryNamesTheField) {
    json::Value fields = fixture_fields();
    fields.set("sshObfuscatedPort", 0x10000);
    try {
        validate_entry(ServerEntry{fields});
        FAIL() << "accepted port 65536";
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "sshObfuscatedPort is not a port number");
    }
    EXPECT_THROW(validate_entry(ServerEntry{json::Value("192.0.2.1")}), Error);
}

// --- lists ---

TEST(ServerEntryList, CountsSkippedLinesByReason) {
    const std::string good = line_of("0 0 0 0 " + fixture_json);
    const std::string good_ipv6 = fixture_line_with("ipAddress", R"("2001:db8::7")");
    std::string text;
    text += good + "\n";
    text += "\n";
    text += "not hex at all\n";
    text += good_ipv6 + "\r\n";
    text += "\r\n";
    text += line_of("0 0 0 0") + "\n";
    text += fixture_line_with("ipAddress", R"("not-an-ip")") + "\n";
    text += "zz\r\n";
    text += std::string(64 * 1024 + 1, 'a') + "\n";  // one past the limit
    text += std::string(64 * 1024, 'a') + "\n";      // at the limit: decoded, but has no spaces
    text += line_of("0 0 0 0 {\"ipAddress\":") + "\n";
    text += good;  // no newline at the end

    DecodedList list = decode_entry_list(text);
    ASSERT_EQ(list.entries.size(), 3u);
    EXPECT_EQ(list.entries[1].ip_address(), "2001:db8::7");
    const std::map<std::string, std::size_t> expected = {
        {"not hex", 2},
        {"no JSON part", 2},
        {"ipAddress is not an IP address", 1},
        {"line longer than 64 KiB", 1},
        {"invalid JSON", 1},
    };
    EXPECT_EQ(list.skipped, expected);
    EXPECT_EQ(list.skipped_count(), 7u);
}

TEST(ServerEntryList, EmptyInputGivesNothing) {
    for (const char* text : {"", "\n", "\r\n\n\r\n", "\n\n\n"}) {
        DecodedList list = decode_entry_list(text);
        EXPECT_TRUE(list.entries.empty());
        EXPECT_EQ(list.skipped_count(), 0u);
    }
}

// --- capabilities and ports ---

TEST(ServerEntryCapabilities, IgnorePassthroughMarkersAndQuicV1) {
    json::Value fields = json::parse(
        R"({"ipAddress":"192.0.2.1","capabilities":["UNFRONTED-MEEK-HTTPS-PASSTHROUGH-v2","OSSH-PASSTHROUGH","QUICv1",
            "INPROXY-WEBRTC-OSSH"],"meekServerPort":8443,"sshObfuscatedPort":443,"sshObfuscatedQUICPort":4433,
            "inproxyOSSHPort":9443})");
    ServerEntry entry{fields};
    EXPECT_TRUE(entry.has_capability("UNFRONTED-MEEK-HTTPS"));
    EXPECT_TRUE(entry.has_capability("OSSH"));
    EXPECT_TRUE(entry.has_capability("QUIC"));
    EXPECT_TRUE(entry.has_capability("TLS"));  // the passthrough-v2 HTTPS meek listener serves TLS-OSSH
    EXPECT_FALSE(entry.has_capability("SSH"));
    EXPECT_EQ(entry.protocols({"UNFRONTED-MEEK-HTTPS-OSSH", "TLS-OSSH", "OSSH", "QUIC-OSSH", "SSH",
                               "INPROXY-WEBRTC-OSSH", "INPROXY-WEBRTC-SSH"}),
              (std::vector<std::string>{"UNFRONTED-MEEK-HTTPS-OSSH", "TLS-OSSH", "OSSH", "QUIC-OSSH",
                                        "INPROXY-WEBRTC-OSSH"}));
}

TEST(ServerEntryCapabilities, DialPorts) {
    ServerEntry entry{json::parse(
        R"({"ipAddress":"192.0.2.1","sshPort":22,"meekServerPort":8443,"tlsOSSHPort":0,"inproxyOSSHPort":9443,
            "sshShadowsocksPort":8388,"sshObfuscatedPort":"443"})")};
    EXPECT_EQ(entry.dial_port("SSH"), 22);
    EXPECT_EQ(entry.dial_port("TLS-OSSH"), 8443);  // tlsOSSHPort 0: the meek port serves it
    EXPECT_EQ(entry.dial_port("UNFRONTED-MEEK-SESSION-TICKET-OSSH"), 8443);
    EXPECT_EQ(entry.dial_port("SHADOWSOCKS-OSSH"), 8388);
    EXPECT_EQ(entry.dial_port("FRONTED-MEEK-OSSH"), 443);
    EXPECT_EQ(entry.dial_port("FRONTED-MEEK-HTTP-OSSH"), 80);
    EXPECT_EQ(entry.dial_port("INPROXY-WEBRTC-OSSH"), 9443);
    EXPECT_EQ(entry.dial_port("INPROXY-WEBRTC-SSH"), std::nullopt);
    EXPECT_EQ(entry.dial_port("OSSH"), std::nullopt);  // a string is not a port
    EXPECT_EQ(entry.dial_port("QUIC-OSSH"), std::nullopt);
    EXPECT_EQ(entry.dial_port("NO-SUCH-PROTOCOL"), std::nullopt);
}

TEST(ServerEntryCapabilities, AccessorsOnAnEmptyEntry) {
    ServerEntry entry;
    EXPECT_EQ(entry.ip_address(), "");
    EXPECT_EQ(entry.region(), "");
    EXPECT_EQ(entry.configuration_version(), 0);
    EXPECT_TRUE(entry.capabilities().empty());
    EXPECT_FALSE(entry.has_capability("SSH"));
    EXPECT_TRUE(entry.protocols({"SSH", "OSSH"}).empty());
}

// --- signatures ---

struct PkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdContextFree {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A fresh Ed25519 key pair, and what a Psiphon signer would put in the entry.
class Signer {
public:
    Signer() : key_(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")) {
        if (!key_) throw Error("cannot generate an Ed25519 key");
    }

    std::string public_key() const {
        unsigned char raw[32];
        std::size_t length = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(key_.get(), raw, &length) != 1) throw Error("no raw public key");
        return std::string(reinterpret_cast<char*>(raw), length);
    }

    std::string public_key_base64() const { return encoding::base64_encode(public_key()); }

    std::string sign(std::string_view message) const {
        std::unique_ptr<EVP_MD_CTX, MdContextFree> context(EVP_MD_CTX_new());
        unsigned char signature[64];
        std::size_t length = sizeof signature;
        if (!context || EVP_DigestSignInit(context.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
            EVP_DigestSign(context.get(), signature, &length, reinterpret_cast<const unsigned char*>(message.data()),
                           message.size()) != 1)
            throw Error("cannot sign");
        return std::string(reinterpret_cast<char*>(signature), length);
    }

    // base64(SHA256(public key)[0:8] || signature)
    std::string signature_field(std::string_view message) const {
        unsigned char digest[32];
        unsigned int length = 0;
        const std::string key = public_key();
        if (EVP_Digest(key.data(), key.size(), digest, &length, EVP_sha256(), nullptr) != 1)
            throw Error("SHA-256 failed");
        return encoding::base64_encode(std::string(reinterpret_cast<char*>(digest), 8) + sign(message));
    }

private:
    Pkey key_;
};

TEST(ServerEntrySignature, ValidOverTheGoCanonicalBytes) {
    Signer signer;
    // The bytes Go's json.Marshal writes for this entry's field map, written out by hand.
    const std::string signed_bytes =
        R"({"capabilities":["OSSH"],"ipAddress":"192.0.2.20","note":"a\u003cb","region":"CA","sshPort":22})";
    json::Value fields = json::parse(
        R"({"sshPort": 22.0, "region": "CA", "ipAddress": "192.0.2.20", "note": "a<b", "capabilities": ["OSSH"],
            "localSource": "EMBEDDED", "localTimestamp": "2026-01-01T00:00:00Z"})");
    fields.set("signature", signer.signature_field(signed_bytes));
    EXPECT_EQ(check_signature(ServerEntry{fields}, signer.public_key_base64()), SignatureCheck::valid);
}

TEST(ServerEntrySignature, RealisticEntrySurvivesALineRoundTrip) {
    Signer signer;
    json::Value fields = fixture_fields();
    fields.set("tag", "explicit-tag-from-the-network");
    fields.set("signature", signer.signature_field(json::canonical_go(fields)));
    const std::string line = encode_entry_line(ServerEntry{fields});
    EXPECT_EQ(check_signature(decode_entry_line(line), signer.public_key_base64()), SignatureCheck::valid);
}

TEST(ServerEntrySignature, TamperedEntryIsInvalid) {
    Signer signer;
    json::Value fields = fixture_fields();
    fields.set("signature", signer.signature_field(json::canonical_go(fields)));
    ASSERT_EQ(check_signature(ServerEntry{fields}, signer.public_key_base64()), SignatureCheck::valid);

    json::Value changed = fields;
    changed.set("sshPort", 23);
    EXPECT_EQ(check_signature(ServerEntry{changed}, signer.public_key_base64()), SignatureCheck::invalid);

    json::Value added = fields;
    added.set("extra", true);
    EXPECT_EQ(check_signature(ServerEntry{added}, signer.public_key_base64()), SignatureCheck::invalid);

    json::Value flipped = fields;
    std::string signature = *encoding::base64_decode(fields.find("signature")->as_string());
    signature.back() = static_cast<char>(signature.back() ^ 1);
    flipped.set("signature", encoding::base64_encode(signature));
    EXPECT_EQ(check_signature(ServerEntry{flipped}, signer.public_key_base64()), SignatureCheck::invalid);

    for (const char* bad : {"not base64!", "AAAA", "c2hvcnQ="}) {
        json::Value malformed = fields;
        malformed.set("signature", bad);
        EXPECT_EQ(check_signature(ServerEntry{malformed}, signer.public_key_base64()), SignatureCheck::invalid) << bad;
    }
}

TEST(ServerEntrySignature, OtherKeyIsInvalid) {
    Signer signer, other;
    json::Value fields = fixture_fields();
    fields.set("signature", signer.signature_field(json::canonical_go(fields)));
    EXPECT_EQ(check_signature(ServerEntry{fields}, other.public_key_base64()), SignatureCheck::invalid);
}

TEST(ServerEntrySignature, NoSignatureIsUnsigned) {
    Signer signer;
    json::Value fields = fixture_fields();
    EXPECT_EQ(check_signature(ServerEntry{fields}, signer.public_key_base64()), SignatureCheck::unsigned_entry);
    fields.set("signature", "");
    EXPECT_EQ(check_signature(ServerEntry{fields}, signer.public_key_base64()), SignatureCheck::unsigned_entry);
}

TEST(ServerEntrySignature, LocallyDerivedTagIsNotSigned) {
    Signer signer;
    json::Value fields = fixture_fields();
    fields.set("signature", signer.signature_field(json::canonical_go(fields)));

    json::Value derived = fields;
    derived.set("tag", "derived-by-the-client");
    derived.set("isLocalDerivedTag", true);
    EXPECT_EQ(check_signature(ServerEntry{derived}, signer.public_key_base64()), SignatureCheck::valid);

    // Without the marker the tag counts as explicit, and so as signed.
    json::Value explicit_tag = fields;
    explicit_tag.set("tag", "derived-by-the-client");
    EXPECT_EQ(check_signature(ServerEntry{explicit_tag}, signer.public_key_base64()), SignatureCheck::invalid);
    explicit_tag.set("isLocalDerivedTag", false);
    EXPECT_EQ(check_signature(ServerEntry{explicit_tag}, signer.public_key_base64()), SignatureCheck::invalid);
}

TEST(ServerEntrySignature, MalformedKeyThrows) {
    ServerEntry entry{fixture_fields()};
    EXPECT_THROW(check_signature(entry, "not base64"), Error);
    EXPECT_THROW(check_signature(entry, encoding::base64_encode(std::string(31, 'k'))), Error);
    EXPECT_THROW(check_signature(entry, ""), Error);
}

}  // namespace
}  // namespace psi::servers
