# parley: thin wrapper over Meson + Ninja. Every target installs missing Debian packages
# first (scripts/deps.sh), so `make demo` and `make check` work on a fresh Debian 12.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
MESON_OPTS ?=

.PHONY: all deps demo check check-unit check-e2e check-net check-asan check-fuzz bench fuzz clean help nat-matrix

all: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) $(MESON_OPTS)
	ninja -C $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh check

help:
	@echo "make          build everything into $(BUILD)/"
	@echo "make demo     build, then run a whole network on loopback and show it working"
	@echo "make check    unit + simulator + end-to-end + NAT lab tests, again under ASan+UBSan, fuzz smoke"
	@echo "make check-net  the NAT lab tests alone (tests/net, needs root)"
	@echo "make nat-matrix the NAT traversal matrix (5 runs), written into docs/NAT.md (root)"
	@echo "make bench    benchmarks (docs/BENCHMARKS.md); JSON lines in bench/results/"
	@echo "make fuzz     run every libFuzzer target (FUZZ_SECONDS each, default 60)"

demo: all
	scripts/demo.sh $(BUILD)/cmd

# The whole suite: warnings are errors here, tests run twice (plain and sanitized; the
# `slow' suite — the 50-supernode overlay simulation — runs in the plain build only).
check: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) $(MESON_OPTS)
	meson configure $(BUILD) -Dwerror=true
	ninja -C $(BUILD) -j $(JOBS)
	$(MAKE) --no-print-directory check-unit check-e2e check-net check-asan check-fuzz
	@echo "make check: all passed"

check-unit:
	meson test -C $(BUILD) --print-errorlogs --num-processes $(JOBS)

check-e2e:
	tests/e2e/e2e.sh $(BUILD)/cmd
	tests/e2e/overlay.sh $(BUILD)/cmd
	tests/e2e/calls.sh $(BUILD)/cmd
	tests/e2e/groups.sh $(BUILD)/cmd
	tests/e2e/mailbox.sh $(BUILD)/cmd

# Real NATs in network namespaces (tests/net/lab.sh). Needs root; without it each test says
# so and fails: a lab that could not be built is never counted as passed.
check-net:
	@for t in tests/net/*.sh; do \
		case $$t in */lab.sh) continue ;; esac; \
		echo "== $$t"; $$t $(BUILD)/cmd || exit 1; \
	done

# The NAT traversal matrix with measured times, regenerated into docs/NAT.md.
nat-matrix: all
	NAT_RUNS=$${NAT_RUNS:-5} tests/net/nat_matrix.sh $(BUILD)/cmd --doc docs/NAT.md

check-asan:
	@test -f $(ASAN_BUILD)/build.ninja || meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debug -Dwerror=true $(MESON_OPTS)
	ninja -C $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN_BUILD) --print-errorlogs --num-processes $(JOBS) --no-suite slow
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		tests/e2e/e2e.sh $(ASAN_BUILD)/cmd
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		tests/e2e/overlay.sh $(ASAN_BUILD)/cmd
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		tests/e2e/calls.sh $(ASAN_BUILD)/cmd
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		tests/e2e/groups.sh $(ASAN_BUILD)/cmd
		tests/e2e/mailbox.sh $(ASAN_BUILD)/cmd

check-fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-10} scripts/fuzz.sh

bench: deps
	@scripts/deps.sh bench
	bench/run.sh

fuzz: deps
	scripts/fuzz.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz build-bench
