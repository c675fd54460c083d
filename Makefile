# psi: make builds everything, make check runs every test, make bench the benchmarks,
# make install installs the lot. Honours PREFIX, DESTDIR, BINDIR, MANDIR, SYSCONFDIR.

VERSION      := 0.1.0
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/sbin
MANDIR       ?= $(PREFIX)/share/man
SYSCONFDIR   ?= /etc
SYSTEMDUNITDIR ?= /etc/systemd/system
SYSUSERSDIR  ?= $(PREFIX)/lib/sysusers.d
BASHCOMPDIR  ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR   ?= $(PREFIX)/share/zsh/vendor-completions
DATADIR      ?= $(PREFIX)/share/psi
STATEDIR     ?= /var/lib/psiphon
DESTDIR      ?=

CXX      ?= g++
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -Werror -Ilib -I$(BUILD)/libssh/install/include -DPSI_VERSION='"$(VERSION)"' -MMD -MP
LDLIBS   := -lnftables -lcap -lcurl -lz -lcrypto -lgnutls -lbpf

BUILD    := build
JOBS     := $(shell nproc 2>/dev/null || echo 2)
PROGRAMS := psi psi-fw psi-servers psi-connect psi-tun psi-diagnose

LIB_SOURCES  := $(filter-out %_test.cpp,$(wildcard lib/*/*.cpp))
TEST_SOURCES := $(wildcard lib/*/*_test.cpp) third_party/libssh/extensions_test.cpp
LIB_OBJECTS  := $(LIB_SOURCES:%.cpp=$(BUILD)/%.o) $(BUILD)/bpf/tcp_fast_path_object.o
TEST_OBJECTS := $(TEST_SOURCES:%.cpp=$(BUILD)/%.o)
BINARIES     := $(PROGRAMS:%=$(BUILD)/%)

# Fuzz targets (lib/*/fuzz/*_fuzz.cpp), built with clang's libFuzzer and AddressSanitizer.
FUZZ_CXX      := clang++-14
FUZZ_FLAGS    := -std=c++20 -O1 -g -Ilib -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_SECONDS  ?= 300
FUZZ_SOURCES  := $(wildcard lib/*/fuzz/*_fuzz.cpp)
FUZZ_TARGETS  := $(patsubst %.cpp,$(BUILD)/fuzz/%,$(notdir $(FUZZ_SOURCES)))
FUZZ_LIB      := $(filter lib/core/% lib/servers/% lib/proxy/% lib/ssh/% lib/packet/% lib/tun/% lib/engine/% lib/connect/psiphon_api.cpp lib/connect/packet_filter.cpp lib/connect/notice.cpp,$(filter-out lib/core/cli.cpp lib/engine/engine_run.cpp lib/servers/selection.cpp,$(LIB_SOURCES)))
FUZZ_OBJECTS  := $(FUZZ_LIB:%.cpp=$(BUILD)/fuzz/obj/%.o) $(BUILD)/bpf/tcp_fast_path_object.o

# libssh: Debian's source package of libssh 0.11 (Debian 13's, with its security fixes) with
# third_party/libssh's patch, built static into $(BUILD)/libssh/install (third_party/libssh/README.md).
LIBSSH_DIR   := $(BUILD)/libssh
LIBSSH_STAMP := $(LIBSSH_DIR)/stamp
LIBSSH_LIB   := $(LIBSSH_DIR)/install/lib/libssh.a

.PHONY: all deps check unit bats bench demo fuzz fuzz-build libssh libssh-check peer install uninstall clean
all: $(BINARIES) $(BUILD)/unit-tests

# Whatever includes libssh's headers waits for the patched build.
$(filter $(BUILD)/lib/connect/% $(BUILD)/third_party/%,$(LIB_OBJECTS) $(TEST_OBJECTS)) $(BUILD)/cmd/psi-connect/main.o: | $(LIBSSH_LIB)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# psi-tun's tc program (lib/engine/tcp_fast_path.bpf.c), built for the kernel's BPF machine and
# linked in as a byte array that libbpf loads.
BPF_CLANG := clang-14
$(BUILD)/bpf/tcp_fast_path.bpf.o: lib/engine/tcp_fast_path.bpf.c lib/engine/tcp_fast_path_abi.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) -O2 -g -Wall -Werror -target bpf -Ilib -I/usr/include/$(shell $(CXX) -print-multiarch) -c $< -o $@

$(BUILD)/bpf/tcp_fast_path_object.cpp: $(BUILD)/bpf/tcp_fast_path.bpf.o
	{ echo '#include <cstddef>'; \
	  echo 'extern const unsigned char psi_tcp_fast_path_object[] = {'; \
	  od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; \
	  echo 'extern const std::size_t psi_tcp_fast_path_object_size = sizeof psi_tcp_fast_path_object;'; } >$@

$(BUILD)/bpf/tcp_fast_path_object.o: $(BUILD)/bpf/tcp_fast_path_object.cpp
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/libpsi.a: $(LIB_OBJECTS)
	$(AR) rcs $@ $^

$(BUILD)/psi-%: $(BUILD)/cmd/psi-%/main.o $(BUILD)/libpsi.a $(LIBSSH_LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -pthread -o $@

$(BUILD)/psi: $(BUILD)/cmd/psi/main.o $(BUILD)/libpsi.a $(LIBSSH_LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -pthread -o $@

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(BUILD)/libpsi.a $(LIBSSH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -pthread -o $@

$(BUILD)/unit-tests: $(TEST_OBJECTS) $(BUILD)/libpsi.a $(LIBSSH_LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -lgtest -lgtest_main -pthread -o $@

$(BUILD)/fuzz/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -MMD -MP -fsanitize=fuzzer-no-link -c $< -o $@

# An archive, so that each target links only the objects it uses.
$(BUILD)/fuzz/libpsi-fuzz.a: $(FUZZ_OBJECTS)
	$(AR) rcs $@ $^

$(BUILD)/fuzz/%_fuzz: lib/*/fuzz/%_fuzz.cpp $(BUILD)/fuzz/libpsi-fuzz.a
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer $^ -lcrypto -lz -lcurl -lcap -lbpf -o $@

fuzz-build: $(FUZZ_TARGETS)
.SECONDARY: $(FUZZ_OBJECTS)

# Each target runs FUZZ_SECONDS on a corpus kept in the build directory, seeded from tests/fuzz.
fuzz: deps
	$(MAKE) -j$(JOBS) fuzz-build
	@for target in $(FUZZ_TARGETS); do \
		name=$${target##*/}; mkdir -p $(BUILD)/fuzz/corpus/$$name; \
		echo "== $$name ($(FUZZ_SECONDS) s)"; \
		if ! $$target -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
			$(BUILD)/fuzz/corpus/$$name tests/fuzz/$$name >$(BUILD)/fuzz/$$name.log 2>&1; then \
			tail -n 40 $(BUILD)/fuzz/$$name.log; echo "$$name: FAILED (crash input in the current directory)"; exit 1; \
		fi; \
		grep -E 'stat::(number_of_executed_units|peak_rss_mb)' $(BUILD)/fuzz/$$name.log; \
	done

$(LIBSSH_STAMP): third_party/libssh/build.sh third_party/libssh/psi-extensions.patch
	third_party/libssh/build.sh $(LIBSSH_DIR)
$(LIBSSH_LIB): $(LIBSSH_STAMP) ;

libssh: deps $(LIBSSH_LIB)

# The two functions the patch adds, against an SSH server written in the test itself.
libssh-check: all
	$(BUILD)/unit-tests --gtest_filter='LibsshExtensions.*'

# The real Psiphon peer for the tests and benchmarks: psiphond and ConsoleClient, built with Go
# 1.26 from Debian's trixie-backports (unpacked, not installed) from the psiphon-tunnel-core tree
# PSIPHON_TUNNEL_CORE (tests/peer/build.sh). Rebuilt only when the source changes.
PSIPHON_TUNNEL_CORE ?= ../shared/psiphon-tunnel-core
peer: deps
	PSIPHON_TUNNEL_CORE=$(PSIPHON_TUNNEL_CORE) tests/peer/build.sh $(BUILD)/peer

# Every Debian package the build, the tests and the benchmarks need; idempotent.
deps:
	@share/install-deps

check: deps
	$(MAKE) -j$(JOBS) all $(BUILD)/bench/rr
	$(MAKE) peer
	$(MAKE) fuzz FUZZ_SECONDS=15
	tests/run

unit: all
	$(BUILD)/unit-tests

# The whole of psi in throwaway namespaces against the real psiphond (tests/demo.sh).
demo: deps
	$(MAKE) -j$(JOBS) all
	$(MAKE) peer
	tests/demo.sh

bench: deps
	$(MAKE) -j$(JOBS) all $(BUILD)/bench/servers_bench $(BUILD)/bench/socks5_relay $(BUILD)/bench/rr
	$(MAKE) peer
	tests/bench/run

install: deps
	$(MAKE) -j$(JOBS) all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(SYSCONFDIR)/psiphon
	install -m 755 $(BINARIES) $(DESTDIR)$(BINDIR)/
	install -m 644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 completions/bash/* $(DESTDIR)$(BASHCOMPDIR)/
	install -m 644 completions/zsh/* $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 644 share/sysusers.d/psi.conf $(DESTDIR)$(SYSUSERSDIR)/psi.conf
	for unit in share/systemd/*; do \
		sed 's|@BINDIR@|$(BINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' $$unit > $(DESTDIR)$(SYSTEMDUNITDIR)/$${unit##*/}; \
		chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${unit##*/}; \
	done
	install -d $(DESTDIR)$(DATADIR)
	sed 's|/usr/local/sbin|$(BINDIR)|g' share/cron/psi-servers-refresh > $(DESTDIR)$(DATADIR)/cron.psi-servers-refresh
	chmod 644 $(DESTDIR)$(DATADIR)/cron.psi-servers-refresh
	chmod 700 $(DESTDIR)$(SYSCONFDIR)/psiphon
	# A server list to ship (Psiphon's embedded list, hex entry lines), when a packager put one here.
	if [ -f share/server_list ]; then install -m 644 share/server_list $(DESTDIR)$(DATADIR)/server_list; fi
	test -e $(DESTDIR)$(SYSCONFDIR)/psiphon/psi.conf || \
		{ sed 's|/usr/local/share/psi|$(DATADIR)|g' share/psi.conf > $(DESTDIR)$(SYSCONFDIR)/psiphon/psi.conf && \
		  chmod 600 $(DESTDIR)$(SYSCONFDIR)/psiphon/psi.conf; }
	@if [ -z "$(DESTDIR)" ]; then share/create-users $(SYSUSERSDIR)/psi.conf; \
		chown -R root:root $(PROGRAMS:%=$(BINDIR)/%) $(SYSCONFDIR)/psiphon; \
		install -d -m 750 -o psiphon-user -g psiphon-group $(STATEDIR); fi

uninstall:
	rm -f $(PROGRAMS:%=$(DESTDIR)$(BINDIR)/%) $(PROGRAMS:%=$(DESTDIR)$(MANDIR)/man8/%.8) \
		$(DESTDIR)$(MANDIR)/man5/psi.conf.5 $(patsubst share/systemd/%,$(DESTDIR)$(SYSTEMDUNITDIR)/%,$(wildcard share/systemd/*)) \
		$(DESTDIR)$(SYSUSERSDIR)/psi.conf $(PROGRAMS:%=$(DESTDIR)$(BASHCOMPDIR)/%) $(PROGRAMS:%=$(DESTDIR)$(ZSHCOMPDIR)/_%)
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf $(BUILD)

-include $(FUZZ_OBJECTS:.o=.d) $(LIB_OBJECTS:.o=.d) $(TEST_OBJECTS:.o=.d) $(BINARIES:$(BUILD)/%=$(BUILD)/cmd/%/main.d)
