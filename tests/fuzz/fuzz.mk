# Fuzz drivers: `all` builds every libFuzzer driver (clang) into $(BUILD);
# `run` (what `make fuzz` does) builds them and runs each for FUZZ_SECONDS
# from its committed corpus, read-only (tests/fuzz/run.sh); `regress`
# builds each driver standalone (-DFUZZ_STANDALONE, any compiler) and
# replays its corpus. One section per driver; each adds to `all`,
# `regress` and ALL_FUZZERS.

BUILD ?= build/fuzz
FUZZ_CC ?= clang
CC ?= cc
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
REGRESS_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -DFUZZ_STANDALONE \
	-Wall -Wextra -Wno-unused-parameter -fsanitize=address,undefined \
	-fno-sanitize-recover=all

.PHONY: all regress fuzz-regress run
all:
regress:
fuzz-regress: regress

# make fuzz FUZZ_SECONDS=600 for the long run, FUZZERS="csv policy" for
# some, FUZZ_MERGE=1 to add the new inputs that cover more to the corpora
FUZZ_SECONDS ?= 60
FUZZ_MERGE ?= 0
FUZZERS ?= $(ALL_FUZZERS)
run: all
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_MERGE=$(FUZZ_MERGE) \
		sh tests/fuzz/run.sh $(BUILD) $(FUZZERS)

# ---- http1: strict HTTP/1.1 framing and the chunked decoder ----
HTTP1_FUZZ_SRC := tests/fuzz/fuzz_http1.c proxy/http1.c proxy/http1_chunked.c \
	proxy/http1_class.c proxy/http1_target.c proxy/http1_value.c
all: $(BUILD)/fuzz_http1
ALL_FUZZERS += http1
regress: fuzz-regress-http1

$(BUILD)/fuzz_http1: $(HTTP1_FUZZ_SRC) proxy/http1_internal.h \
	tests/fuzz/fuzz_check.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(HTTP1_FUZZ_SRC) -lhttp_parser

$(BUILD)/fuzz_http1_standalone: $(HTTP1_FUZZ_SRC) proxy/http1_internal.h \
	tests/fuzz/fuzz_check.h
	@mkdir -p $(dir $@)
	$(CC) $(REGRESS_CFLAGS) -o $@ $(HTTP1_FUZZ_SRC) -lhttp_parser

.PHONY: fuzz-regress-http1
fuzz-regress-http1: $(BUILD)/fuzz_http1_standalone
	$(BUILD)/fuzz_http1_standalone tests/fuzz/corpus/http1/*
# ---- end http1 ----

# ---- scan: the record scanner against jansson, each kernel against the
# scalar reference (CG_SCAN_KERNEL picks the kernel under test) ----
SCAN_FUZZ_SRC := tests/fuzz/fuzz_scan.c policy/scan.c policy/jsonptr.c \
	policy/keyfold.c policy/subject_id.c policy/scan_kernel.c \
	policy/scan_avx2.c policy/scan_avx512.c
SCAN_FUZZ_DEPS := $(SCAN_FUZZ_SRC) include/consentgate/scan.h \
	include/consentgate/jsonptr.h policy/scan_internal.h \
	tests/unit/test_scan_outcome.h
all: $(BUILD)/fuzz_scan
ALL_FUZZERS += scan
regress: fuzz-regress-scan

$(BUILD)/fuzz_scan: $(SCAN_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(SCAN_FUZZ_SRC) -ljansson -lutf8proc

$(BUILD)/fuzz_scan_standalone: $(SCAN_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(REGRESS_CFLAGS) -o $@ $(SCAN_FUZZ_SRC) -ljansson -lutf8proc

# the corpus under the scalar reference and under every other kernel
.PHONY: fuzz-regress-scan
fuzz-regress-scan: $(BUILD)/fuzz_scan_standalone
	CG_SCAN_KERNEL=scalar $(BUILD)/fuzz_scan_standalone tests/fuzz/corpus/scan/*
	CG_SCAN_KERNEL=avx2 $(BUILD)/fuzz_scan_standalone tests/fuzz/corpus/scan/*
	CG_SCAN_KERNEL=avx512 $(BUILD)/fuzz_scan_standalone tests/fuzz/corpus/scan/*
# ---- end scan ----

# ---- consent: CSV import and snapshot checks ----
CSV_FUZZ_SRC := tests/fuzz/fuzz_csv.c policy/consent.c policy/consent_live.c \
	policy/consent_snapshot.c \
	policy/csv.c policy/rfc3339.c policy/cg_errors.c
CSV_FUZZ_DEPS := $(CSV_FUZZ_SRC) policy/consent_internal.h policy/csv_internal.h \
	include/consentgate/consent.h include/consentgate/rfc3339.h
all: $(BUILD)/fuzz_csv
ALL_FUZZERS += csv
regress: fuzz-regress-csv

$(BUILD)/fuzz_csv: $(CSV_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(CSV_FUZZ_SRC)

$(BUILD)/fuzz_csv_standalone: $(CSV_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(REGRESS_CFLAGS) -o $@ $(CSV_FUZZ_SRC)

.PHONY: fuzz-regress-csv
fuzz-regress-csv: $(BUILD)/fuzz_csv_standalone
	$(BUILD)/fuzz_csv_standalone tests/fuzz/corpus/csv/*
# ---- end consent ----

# ---- policy: the rule-file loader, linked with all of policy/ ----
POLICY_FUZZ_SRC := tests/fuzz/fuzz_policy.c $(sort $(wildcard policy/*.c))
POLICY_FUZZ_DEPS := $(POLICY_FUZZ_SRC) $(wildcard policy/*.h) \
	$(wildcard include/consentgate/*.h)
all: $(BUILD)/fuzz_policy
ALL_FUZZERS += policy
regress: fuzz-regress-policy

$(BUILD)/fuzz_policy: $(POLICY_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(POLICY_FUZZ_SRC) -ljansson -lutf8proc

$(BUILD)/fuzz_policy_standalone: $(POLICY_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(REGRESS_CFLAGS) -o $@ $(POLICY_FUZZ_SRC) -ljansson -lutf8proc

.PHONY: fuzz-regress-policy
fuzz-regress-policy: $(BUILD)/fuzz_policy_standalone
	$(BUILD)/fuzz_policy_standalone tests/fuzz/corpus/policy/*
# ---- end policy ----

# ---- casefile: consentgate test's case files, and each case decided ----
CASEFILE_FUZZ_SRC := tests/fuzz/fuzz_casefile.c proxy/casefile.c proxy/cli.c \
	proxy/inspect.c proxy/declog.c proxy/pseudonym.c proxy/logq.c proxy/log.c \
	proxy/respond.c \
	$(sort $(wildcard policy/*.c))
CASEFILE_FUZZ_DEPS := $(CASEFILE_FUZZ_SRC) tests/fuzz/fuzz_check.h \
	$(wildcard proxy/*.h policy/*.h) \
	$(wildcard include/consentgate/*.h)
CASEFILE_FUZZ_LIBS := $(shell pkg-config --libs jansson libutf8proc libevent zlib \
	libisal libcrypto)
all: $(BUILD)/fuzz_casefile
ALL_FUZZERS += casefile
regress: fuzz-regress-casefile

$(BUILD)/fuzz_casefile: $(CASEFILE_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(CASEFILE_FUZZ_SRC) $(CASEFILE_FUZZ_LIBS)

$(BUILD)/fuzz_casefile_standalone: $(CASEFILE_FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(REGRESS_CFLAGS) -o $@ $(CASEFILE_FUZZ_SRC) $(CASEFILE_FUZZ_LIBS)

.PHONY: fuzz-regress-casefile
fuzz-regress-casefile: $(BUILD)/fuzz_casefile_standalone
	$(BUILD)/fuzz_casefile_standalone tests/fuzz/corpus/casefile/*
# ---- end casefile ----
