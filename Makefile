# Thin wrapper around CMake. `make run` and `make test` are the two
# commands a new user needs (see README.md).
BUILD    ?= build
JOBS     ?= $(shell nproc)
PYTHON   ?= /usr/bin/python3

.PHONY: all deps build quiet-build run test test-asan fuzz bench clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/Makefile:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

# `make run` builds quietly: only warnings and errors reach the terminal
# before the banner (the whole build log is in $(BUILD)/build.log).
quiet-build: $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory >$(BUILD)/build.log 2>&1 || \
	  { grep -E 'error|warning|Error' $(BUILD)/build.log; exit 1; }
	@grep -E 'warning' $(BUILD)/build.log || true

run: deps quiet-build
	@scripts/run-dev.sh $(BUILD)/sealpost

# Every test twice: the release build, then the same suite built with
# AddressSanitizer + UBSan (any report fails the run).
test: deps build test-asan
	@cd $(BUILD) && ctest --output-on-failure

test-asan: deps
	@cmake -S . -B build-asan -DSEALPOST_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure

# libFuzzer targets (clang, ASan+UBSan), FUZZ_SECONDS per target; see
# docs/FUZZING.md. `make test` runs a short version as the fuzz_smoke test.
FUZZ_SECONDS ?= 60
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# sealpost and Postfix side by side (docs/BENCHMARKS.md): bench/run.sh
# installs Postfix and gnuplot itself. BENCH_QUICK=1 for a short run.
bench: deps build
	@bench/run.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# Install for production: the binary, the users the processes run as, the
# spool and an example config. PREFIX=/usr/local by default.
PREFIX ?= /usr/local
.PHONY: install
install: build
	install -D -m 0755 $(BUILD)/sealpost $(DESTDIR)$(PREFIX)/sbin/sealpost
	id sealpost >/dev/null 2>&1 || useradd --system --no-create-home \
	  --home-dir /nonexistent --shell /usr/sbin/nologin sealpost
	id sealpost-queue >/dev/null 2>&1 || useradd --system --no-create-home \
	  --home-dir /nonexistent --shell /usr/sbin/nologin sealpost-queue
	id sealpost-delivery >/dev/null 2>&1 || useradd --system --no-create-home \
	  --home-dir /nonexistent --shell /usr/sbin/nologin sealpost-delivery
	install -d -m 0700 -o sealpost-queue $(DESTDIR)/var/spool/sealpost
	install -d -m 0755 $(DESTDIR)/etc/sealpost
	test -e $(DESTDIR)/etc/sealpost/sealpost.conf || \
	  install -m 0644 etc/sealpost.example.conf $(DESTDIR)/etc/sealpost/sealpost.conf
