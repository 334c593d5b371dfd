# consentgate: one plain Makefile. `make` builds build/consentgate,
# `make test` runs every test, `make run` starts the demo, `make bench`
# compares with nginx and HAProxy. Variants build in build/<variant>/:
#   make SANITIZER=address,undefined test
#   make fuzz     (every libFuzzer driver, FUZZ_SECONDS=60 each; clang)

BUILD ?= build
CC ?= cc
SANITIZER ?=

ifneq ($(SANITIZER),)
BUILD := build/sanitize
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKGS := libevent_core libevent_extra libevent_openssl libevent_pthreads openssl jansson zlib libutf8proc libpq libisal
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wpointer-arith -Wcast-qual -Wvla -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(CFLAGS) $(SANFLAGS) \
	-Iinclude $(PKG_CFLAGS) -MMD -MP
LDFLAGS_ALL = -pthread $(SANFLAGS) $(LDFLAGS)
LIBS = $(PKG_LIBS) -lm

# The commit --version names (proxy/version.c): `git describe --always
# --dirty`, without --dirty itself, which takes the index lock that a
# `git commit` in the same tree may need at that moment.
CG_COMMIT := $(if $(wildcard .git),$(shell c=$$(git describe --always \
	2>/dev/null) && { GIT_OPTIONAL_LOCKS=0 git status --porcelain \
	--untracked-files=no 2>/dev/null | grep -q . && c=$$c-dirty; echo $$c; }))
CG_COMMIT := $(or $(CG_COMMIT),unknown)

POLICY_SRC := $(sort $(wildcard policy/*.c))
PROXY_SRC := $(sort $(filter-out proxy/main.c,$(wildcard proxy/*.c)))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
MICRO_SRC := $(sort $(wildcard bench/micro/*.c))

POLICY_OBJ := $(POLICY_SRC:%.c=$(BUILD)/obj/%.o)
PROXY_OBJ := $(PROXY_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
MICRO_BIN := $(MICRO_SRC:bench/micro/%.c=$(BUILD)/bench/%)
# bench_simdjson (C++): simdjson beside the scanner, when Debian's
# libsimdjson-dev is installed (CG_BENCH=1 .ci/deps.sh installs it)
MICRO_CXX_SRC := $(if $(wildcard /usr/include/simdjson.h),$(sort $(wildcard bench/micro/*.cpp)))
MICRO_BIN += $(MICRO_CXX_SRC:bench/micro/%.cpp=$(BUILD)/bench/%)

.PHONY: all deps test unit cli fuzz-regress integration test-readers run bench micro fuzz clean format

all: $(BUILD)/consentgate

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libpolicy.a: $(POLICY_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libproxy.a: $(PROXY_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/consentgate: $(BUILD)/obj/proxy/main.o $(BUILD)/libproxy.a $(BUILD)/libpolicy.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# version.o is rebuilt when the commit changes ($(BUILD)/commit holds it).
$(BUILD)/obj/proxy/version.o: ALL_CFLAGS += -DCG_COMMIT='"$(CG_COMMIT)"'
$(BUILD)/obj/proxy/version.o: $(BUILD)/commit
$(BUILD)/commit: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CG_COMMIT)' | cmp -s - $@ || echo '$(CG_COMMIT)' >$@
.PHONY: FORCE
FORCE:

# A unit test may #include the .c it tests; it links everything else.
# CG_SOURCE_DIR: the repository root, for data found from it (../shared).
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libproxy.a $(BUILD)/libpolicy.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DCG_SOURCE_DIR='"$(CURDIR)"' $(LDFLAGS_ALL) -o $@ $< \
		$(BUILD)/libproxy.a $(BUILD)/libpolicy.a $(LIBS) -lcmocka

$(BUILD)/bench/%: bench/micro/%.c bench/micro/bench_tweets.h $(BUILD)/libpolicy.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libpolicy.a $(LIBS)

$(BUILD)/bench/%: bench/micro/%.cpp bench/micro/bench_tweets.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -o $@ $< -lsimdjson

deps:
	@sh .ci/deps.sh

unit: deps $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
		(cd tests/unit && ../../$$t); done

# Golden tests of the policy author's CLI.
cli: deps $(BUILD)/consentgate
	@CONSENTGATE=$(CURDIR)/$(BUILD)/consentgate sh tests/cli/run.sh

# Every fuzz corpus replayed through its driver (ASan+UBSan, any compiler).
fuzz-regress: deps
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk BUILD=$(BUILD)/fuzz-regress regress

integration: deps $(BUILD)/consentgate
	@CONSENTGATE=$(CURDIR)/$(BUILD)/consentgate BUILD=$(CURDIR)/$(BUILD) \
		sh tests/integration/run.sh

# The multi-reader differential suite (tests/readers/README.md).
test-readers: deps $(BUILD)/consentgate
	@BUILD=$(CURDIR)/$(BUILD) CONSENTGATE=$(CURDIR)/$(BUILD)/consentgate \
		sh tests/readers/run.sh $(READERS_ARGS)

# Memcheck (valgrind): every unit test, then integration scenarios with
# the proxy under valgrind (CG_WRAP, tests/integration/harness.py): any
# error, or a definite or indirect leak at exit, fails. About 3-4 minutes.
# Out: the fd-limit scenarios (valgrind takes descriptors of its own) and
# the timed shutdown ones (SIGTERM and leaks at exit are checked at every
# proxy's end anyway).
VALGRIND := valgrind --tool=memcheck --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --quiet
VALGRIND_SCENARIOS := \
	test_core:get_1mib_byte_exact,post_1mib_chunked_byte_exact,pipelining_in_order,upstream_dies_mid_response,client_gone_mid_request,framing_refusals,expect_100_continue,limit_413_body,error_survives_a_client_still_sending,stale_pooled_connection,client_gone_mid_response \
	test_consent:adversarial_records_refused,late_refusal_in_a_streamed_body,gzip_bomb_refused,gzip_edge_cases,client_gone_mid_ndjson_stream,large_streamed_ndjson,array_at_route,sighup_reload_and_failed_reload \
	test_faults:upstream_resets_before_the_head,upstream_resets_mid_response,upstream_hangs_504,upstream_drips_body_closed,client_gone_mid_body_inspected,client_reset_mid_body_inspected,slowloris_300 \
	test_ops:decision_log_proves_every_record_without_personal_data,metrics_and_healthz_on_the_admin_listener \
	test_tls:tls_large_bodies_both_ways,garbage_and_stalled_handshakes \
	test_proof:decision_log_proves_every_subject_under_a_pseudonym,drop_mode_drops_and_counts_lines,sigusr1_reopens_both_logs,request_ids_are_taken_made_passed_on_and_returned

.PHONY: valgrind
valgrind: deps $(UNIT_BIN) $(BUILD)/consentgate
	@set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
		t0=$$(date +%s); \
		(cd tests/unit && CG_VALGRIND=1 $(VALGRIND) ../../$$t); \
		echo "== valgrind $$t: $$(($$(date +%s) - t0)) s"; done
	@cc -std=c11 -O2 -Wall -Wextra -pthread -o $(BUILD)/test-upstream \
		tests/integration/upstream.c
	@failed=0; for s in $(VALGRIND_SCENARIOS); do \
		echo "== valgrind $${s%%:*}"; t0=$$(date +%s); \
		CG_WRAP="$(VALGRIND)" CONSENTGATE=$(CURDIR)/$(BUILD)/consentgate \
		BUILD=$(CURDIR)/$(BUILD) TEST_UPSTREAM=$(CURDIR)/$(BUILD)/test-upstream \
		timeout -k 5 300 python3 tests/integration/$${s%%:*}.py \
			$$(echo "$${s#*:}" | tr , ' ') || failed=1; \
		echo "== valgrind $${s%%:*}: $$(($$(date +%s) - t0)) s"; done; \
	[ $$failed -eq 0 ] && echo "valgrind: no errors, no leaks" || \
		{ echo "valgrind: FAILED"; exit 1; }

test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory cli
	@$(MAKE) --no-print-directory test-install
ifeq ($(SANITIZER),)
	@$(MAKE) --no-print-directory fuzz-regress
endif
	@$(MAKE) --no-print-directory integration

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the man pages,
# the systemd unit (filled in with BINDIR and SYSCONFDIR) and the examples,
# from proxy/dist/ (README "Installing"). No file in SYSCONFDIR is written:
# the configuration is the operator's. tests/install/run.sh checks it.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/consentgate
DOCDIR ?= $(PREFIX)/share/doc/consentgate
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install
INSTALLED_DOCS := $(DOCDIR)/LICENSE $(DOCDIR)/README.md \
	$(DOCDIR)/examples/consentgate.json $(DOCDIR)/examples/ai-training.json \
	$(DOCDIR)/examples/consent-example.csv

.PHONY: install uninstall test-install
install: $(BUILD)/consentgate
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(SYSCONFDIR)/consentgate
	$(INSTALL) -m 0755 $(BUILD)/consentgate $(DESTDIR)$(BINDIR)/consentgate
	$(INSTALL) -m 0644 proxy/dist/consentgate.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 proxy/dist/consentgate-policy.5 $(DESTDIR)$(MANDIR)/man5/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		proxy/dist/consentgate.service.in >$(DESTDIR)$(UNITDIR)/consentgate.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/consentgate.service
	$(INSTALL) -m 0644 policy/sql/consent.sql $(DESTDIR)$(DATADIR)/
	$(INSTALL) -m 0644 LICENSE README.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 proxy/dist/consentgate.json policy/examples/ai-training.json \
		tests/data/consent-example.csv $(DESTDIR)$(DOCDIR)/examples/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/consentgate $(DESTDIR)$(MANDIR)/man1/consentgate.1 \
		$(DESTDIR)$(MANDIR)/man5/consentgate-policy.5 \
		$(DESTDIR)$(UNITDIR)/consentgate.service $(DESTDIR)$(DATADIR)/consent.sql \
		$(addprefix $(DESTDIR),$(INSTALLED_DOCS))
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR) \
		$(DESTDIR)$(SYSCONFDIR)/consentgate 2>/dev/null || true

# make install into a temporary DESTDIR, every file checked (tests/install/).
test-install: $(BUILD)/consentgate
	@BUILD=$(BUILD) sh tests/install/run.sh

run: deps $(BUILD)/consentgate
	$(BUILD)/consentgate demo

# The recording test upstream (tests/integration/upstream.c), for trying
# consentgate by hand: README "Trying it by hand". Flags as in run.sh.
.PHONY: upstream
upstream: $(BUILD)/test-upstream
$(BUILD)/test-upstream: tests/integration/upstream.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -Wall -Wextra -pthread -o $@ $<

micro: deps $(MICRO_BIN)

bench: deps $(BUILD)/consentgate micro
	@BUILD=$(CURDIR)/$(BUILD) sh bench/run.sh

# Build and run every fuzz driver (tests/fuzz/run.sh); exit 1 on a finding.
fuzz: export CG_FUZZ := 1
fuzz: deps
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk BUILD=$(BUILD)/fuzz run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
