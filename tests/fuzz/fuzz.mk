# Fuzz drivers: `make fuzz` builds every libFuzzer driver (clang) into
# build/fuzz/; `make -f tests/fuzz/fuzz.mk fuzz-regress` builds each driver
# standalone (-DFUZZ_STANDALONE, any compiler) and replays its corpus.
# One section per driver; each adds to `all` and `regress`.

BUILD ?= build/fuzz
FUZZ_CC ?= clang
CC ?= cc
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
REGRESS_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -DFUZZ_STANDALONE \
	-Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=all

.PHONY: all regress fuzz-regress
all:
regress:
fuzz-regress: regress

# ---- http1: strict HTTP/1.1 framing and the chunked decoder ----
HTTP1_FUZZ_SRC := tests/fuzz/fuzz_http1.c proxy/http1.c proxy/http1_chunked.c \
	proxy/http1_class.c proxy/http1_target.c proxy/http1_value.c
all: $(BUILD)/fuzz_http1
regress: fuzz-regress-http1

$(BUILD)/fuzz_http1: $(HTTP1_FUZZ_SRC) proxy/http1_internal.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(HTTP1_FUZZ_SRC) -lhttp_parser

$(BUILD)/fuzz_http1_standalone: $(HTTP1_FUZZ_SRC) proxy/http1_internal.h
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
CSV_FUZZ_SRC := tests/fuzz/fuzz_csv.c policy/consent.c policy/consent_snapshot.c \
	policy/csv.c policy/rfc3339.c policy/cg_errors.c
CSV_FUZZ_DEPS := $(CSV_FUZZ_SRC) policy/consent_internal.h policy/csv_internal.h \
	include/consentgate/consent.h include/consentgate/rfc3339.h
all: $(BUILD)/fuzz_csv
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
