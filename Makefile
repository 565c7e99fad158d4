# Thin wrapper around CMake. `make run` and `make test` are the two
# commands a new user needs (see README.md).
BUILD    ?= build
JOBS     ?= $(shell nproc)
PYTHON   ?= /usr/bin/python3

.PHONY: all deps build run test test-asan clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/Makefile:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS)

run: deps build
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

clean:
	rm -rf $(BUILD) build-asan
