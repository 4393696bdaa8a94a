# corral — top-level build.
#
# Layout: each folder is one layer and builds one artefact, found by
# wildcard so that adding a .c file needs no edit here:
#   common/    -> libcorral.a   (wire codec, logging, config: shared by all)
#   proxy/     -> libproxy.a    (one invocation -> one sandboxed run)
#   processor/ -> corral-processor
#   cli/       -> corral        (direct client for maintainers and tests)
#   gateway/   -> libgateway.a + gw_main.c -> corral-gateway
#   bench/     -> corral-bench  (load generator; bench/bench.py drives it)
#   tests/unit/test_*.c -> one binary each, linked with the libraries
#
# `make SAN=1` builds the same into build-san/ with ASan + UBSan.
# BUILD=dir lets several checkouts/helpers build side by side.

SAN ?=
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS =
endif

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -Icommon -Iproxy -Igateway -MMD -MP
LDLIBS = -lnng -lmsgpackc -ljansson -lseccomp -lmbedcrypto -lpthread -lm
# the gateway's HTTP side (libmicrohttpd): only what links libgateway
GW_LDLIBS = -lmicrohttpd
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS)

PY = /usr/bin/python3

common_src    := $(wildcard common/*.c)
proxy_src     := $(wildcard proxy/*.c)
processor_src := $(wildcard processor/*.c)
cli_src       := $(wildcard cli/*.c)
gateway_src   := $(filter-out gateway/gw_main.c,$(wildcard gateway/*.c))
bench_src     := $(wildcard bench/*.c)
unit_src      := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCORRAL := $(BUILD)/libcorral.a
LIBPROXY  := $(BUILD)/libproxy.a
LIBGW     := $(BUILD)/libgateway.a
BINS := $(BUILD)/corral-processor $(BUILD)/corral $(BUILD)/corral-bench
ifneq ($(gateway_src),)
BINS += $(BUILD)/corral-gateway
endif
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(unit_src))

.PHONY: all deps test test-unit test-system test-san check run stop clean bench fuzz images test-images
all: $(BINS) $(UNIT_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBCORRAL): $(call obj,$(common_src))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(LIBPROXY): $(call obj,$(proxy_src))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(LIBGW): $(call obj,$(gateway_src))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/corral-processor: $(call obj,$(processor_src)) $(LIBPROXY) $(LIBCORRAL)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/corral: $(call obj,$(cli_src)) $(LIBCORRAL)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/corral-bench: $(call obj,$(bench_src)) $(LIBCORRAL)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/corral-gateway: $(BUILD)/obj/gateway/gw_main.o $(LIBGW) $(LIBCORRAL)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(GW_LDLIBS) $(LDLIBS)
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBGW) $(LIBPROXY) $(LIBCORRAL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(GW_LDLIBS) $(LDLIBS)

# Installs what the project needs from Debian, only what is missing.
deps:
	@sh stack/deps.sh

test-unit: all
	@sh tests/run-unit.sh $(BUILD)

# System tests, then the hostile-code suite at every isolation level the
# machine allows (tests/hostile), all against the real binaries.
# (Two runs: each folder's conftest is imported as `conftest`.)
test-system: all
	CORRAL_BUILD=$(abspath $(BUILD)) $(PY) -m pytest -q -p no:cacheprovider tests/system $(PYTEST_ARGS)
	CORRAL_BUILD=$(abspath $(BUILD)) $(PY) -m pytest -q -p no:cacheprovider tests/hostile $(PYTEST_ARGS)

# The README's test command: everything, plain then under ASan/UBSan,
# then the Helm chart's offline checks. (The image tests, `make
# test-images`, take minutes more and run apart; see README.)
test: deps
	$(MAKE) test-unit test-system
	$(MAKE) SAN=1 test-unit test-system
	$(MAKE) test-chart

run: deps all
	@sh stack/corral-stack run $(abspath $(BUILD))

stop:
	@sh stack/corral-stack stop

# Coverage-guided fuzzing of the request decoder (clang's libFuzzer).
FUZZ_SECONDS ?= 60
# fuzz-http: the gateway's HTTP body -> request mapping the same way.
FUZZ_CC = clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Igateway
fuzz:
	@mkdir -p $(BUILD)/fuzz-corpus
	$(FUZZ_CC) -o $(BUILD)/fuzz_wire tests/fuzz/fuzz_wire.c $(common_src) $(LDLIBS)
	$(BUILD)/fuzz_wire -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD)/fuzz-corpus tests/fuzz/seeds

.PHONY: fuzz-http
fuzz-http:
	@mkdir -p $(BUILD)/fuzz-http-corpus
	$(FUZZ_CC) -o $(BUILD)/fuzz_http_json tests/fuzz/fuzz_http_json.c $(gateway_src) $(common_src) $(GW_LDLIBS) $(LDLIBS)
	$(BUILD)/fuzz_http_json -max_total_time=$(FUZZ_SECONDS) -max_len=8192 $(FUZZ_ARGS) \
	  $(BUILD)/fuzz-http-corpus tests/fuzz/http-seeds

# Benchmarks print figures; they assert nothing (see bench/bench.py).
bench: deps all
	$(PY) bench/bench.py --build $(BUILD) $(BENCH_ARGS)

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- images and chart (owned by the images engineer; see docs/deploy.md) ----
# Not part of `make test`: they need podman or docker and take minutes
# (the debootstrap of the base alone). images/*.sh hold the steps so that
# CI and a developer run the same thing.
#   make images       base (debootstrap, cached), onbuild, runtimes, gateway
#   make test-images  builds them, then runs them: tests/images/test_images.py
#   make test-chart   helm lint/template + schema checks: tests/images/test_chart.py
images:
	@sh images/deps.sh
	@sh images/build.sh all

test-images: images
	$(PY) -m pytest -q -p no:cacheprovider tests/images/test_images.py $(PYTEST_ARGS)

.PHONY: test-chart
test-chart:
	@sh images/deps.sh
	$(PY) -m pytest -q -p no:cacheprovider tests/images/test_chart.py $(PYTEST_ARGS)
