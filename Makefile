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

# Install for production (see README.md, "Production install"): the
# binary and its sendmail link, the systemd unit, the man pages, the users the processes run as,
# the spool, and a working example in /etc/sealpost (config, mailboxes
# list, self-signed certificate), each only when none exists.
# PREFIX=/usr/local by default; the config stays in /etc/sealpost (the
# binary's default -c). DESTDIR stages the files for a package: then no
# user is created (nothing outside DESTDIR is touched) and nothing is
# chowned; the master chowns the spool to queue_user at every start.
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
CONFDIR := /etc/sealpost
SPOOLDIR := /var/spool/sealpost
USERS   := sealpost sealpost-queue sealpost-delivery
.PHONY: install install-files install-users uninstall
install: build
	@$(MAKE) --no-print-directory install-files

# install-files: the same without the build step (packaging after `make
# build`, and the install tests).
install-files: install-users
	install -D -m 0755 $(BUILD)/sealpost $(DESTDIR)$(SBINDIR)/sealpost
	@# sendmail -> sealpost, unless another MTA's sendmail is there (README).
	@l=$(DESTDIR)$(SBINDIR)/sendmail; \
	if [ -e "$$l" ] && [ "$$(readlink "$$l")" != sealpost ]; then \
	  echo "install: keeping $$l (not ours: another MTA's?); see README, \"Local programs: sendmail\""; \
	else ln -sfn sealpost "$$l" && echo "install: $$l -> sealpost"; fi
	sed 's|@SBINDIR@|$(SBINDIR)|g' etc/sealpost.service.in >$(BUILD)/sealpost.service
	install -D -m 0644 $(BUILD)/sealpost.service $(DESTDIR)$(UNITDIR)/sealpost.service
	install -D -m 0644 man/sealpost.8 $(DESTDIR)$(MANDIR)/man8/sealpost.8
	install -D -m 0644 man/sealpost.conf.5 $(DESTDIR)$(MANDIR)/man5/sealpost.conf.5
	install -d -m 0711 $(DESTDIR)$(SPOOLDIR)
	install -d -m 0755 $(DESTDIR)$(CONFDIR)
	test -e $(DESTDIR)$(CONFDIR)/sealpost.conf || \
	  install -m 0644 etc/sealpost.example.conf $(DESTDIR)$(CONFDIR)/sealpost.conf
	test -e $(DESTDIR)$(CONFDIR)/example.org.users || \
	  install -m 0644 etc/example.org.users $(DESTDIR)$(CONFDIR)/example.org.users
	@scripts/install-cert.sh $(DESTDIR)$(CONFDIR)/tls
	@echo "install: done; edit $(CONFDIR)/sealpost.conf, then: sealpost check &&" \
	  "systemctl daemon-reload && systemctl enable --now sealpost"

install-users:
	@if [ -n "$(DESTDIR)" ]; then \
	  echo "install: DESTDIR is set: not creating the users $(USERS) (create them on the target)"; \
	else for u in $(USERS); do \
	  id $$u >/dev/null 2>&1 || { echo "install: creating system user $$u"; \
	    useradd --system --no-create-home --home-dir /nonexistent \
	      --shell /usr/sbin/nologin $$u; }; \
	done; fi

# Removes what install put, except: the spool (it may hold mail), a
# config or mailboxes list that differs from the example (yours now), a
# certificate that is not the self-signed one install generated, and the
# users (files may still belong to them). Each kept item is named.
uninstall:
	@l=$(DESTDIR)$(SBINDIR)/sendmail; \
	if [ "$$(readlink "$$l")" = sealpost ]; then rm -f "$$l"; fi
	rm -f $(DESTDIR)$(SBINDIR)/sealpost $(DESTDIR)$(UNITDIR)/sealpost.service \
	  $(DESTDIR)$(MANDIR)/man8/sealpost.8 $(DESTDIR)$(MANDIR)/man5/sealpost.conf.5
	@for pair in sealpost.conf:sealpost.example.conf example.org.users:example.org.users; do \
	  f=$(DESTDIR)$(CONFDIR)/$${pair%%:*}; [ -e "$$f" ] || continue; \
	  if cmp -s "$$f" etc/$${pair#*:}; then rm -f "$$f"; \
	  else echo "uninstall: keeping $$f (changed since install)"; fi; \
	done
	@t=$(DESTDIR)$(CONFDIR)/tls; if [ -e $$t/cert.pem ]; then \
	  if openssl x509 -in $$t/cert.pem -noout -subject 2>/dev/null | \
	     grep -q 'O *= *sealpost self-signed'; then rm -f $$t/cert.pem $$t/key.pem; \
	  else echo "uninstall: keeping $$t (not the self-signed certificate install made)"; fi; fi
	@rmdir $(DESTDIR)$(CONFDIR)/tls 2>/dev/null || true
	@rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true
	@echo "uninstall: keeping $(DESTDIR)$(SPOOLDIR) (it may hold queued mail) and the users" \
	  "$(USERS); remove them by hand when you are sure"
