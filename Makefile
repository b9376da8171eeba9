# obj — build, test and run everything from a fresh machine.
#   make demo    build everything and run an end-to-end example
#   make test    every suite plus lint (what CI runs)
#   make soak    long crash/fault runs     make bench   benchmarks (docs/performance.md)
#   make fuzz    each cargo-fuzz target for FUZZ_SECONDS (needs nightly + cargo-fuzz)
SHELL := /bin/bash
CARGO ?= cargo
CRASH_CYCLES ?= 100
SOAK_CYCLES ?= 5000
SOAK_POWER_CUTS ?= 20000
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := open_db btree_ops doc_decode doc_json query_json

.PHONY: all build demo test test-rust test-c test-install lint header install soak fuzz bench bench-engine bench-report bench-criterion clean

all: build

# The default members: engine and capi. The benchmark crate (bench/, with
# redb, LMDB and a bundled SQLite) is built only by `make bench`, and
# checked by clippy in `make lint`.
build:
	$(CARGO) build --release

demo: build
	$(CARGO) run --release --quiet -p obj-engine --example demo -- target/demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	OBJ_CRASH_CYCLES=$(CRASH_CYCLES) $(CARGO) test --release --workspace

# The C ABI: C11 programs with -Wall -Wextra -Werror, linked once against
# libobj.so and once statically against libobj.a, run under valgrind.
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -g -Iinclude
C_TESTS := test_api test_threads
C_OUT := target/c-tests
STATIC_LIBS := -lpthread -ldl -lm -lrt -lgcc_s -lc
VALGRIND := valgrind --quiet --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-possibly-lost=no

test-c: build
	@mkdir -p $(C_OUT)
	@for t in $(C_TESTS); do \
	  cc $(CFLAGS_TEST) tests/c/$$t.c -o $(C_OUT)/$$t-shared -Ltarget/release -lobj -Wl,-rpath,$(CURDIR)/target/release -lpthread || exit 1; \
	  cc $(CFLAGS_TEST) tests/c/$$t.c -o $(C_OUT)/$$t-static target/release/libobj.a $(STATIC_LIBS) || exit 1; \
	  $(C_OUT)/$$t-static $(C_OUT) || exit 1; \
	  $(VALGRIND) $(C_OUT)/$$t-shared $(C_OUT) || exit 1; \
	done

# Regenerate include/obj.h from capi/src (make test fails when it is stale).
header:
	OBJ_UPDATE_HEADER=1 $(CARGO) test -p obj-capi --test header committed_header_matches_sources

PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 include/obj.h $(DESTDIR)$(PREFIX)/include/obj.h
	install -m 755 target/release/libobj.so $(DESTDIR)$(PREFIX)/lib/libobj.so
	install -m 644 target/release/libobj.a $(DESTDIR)$(PREFIX)/lib/libobj.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|'"$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"'|' \
	  capi/obj.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/obj.pc

test: lint test-rust test-c test-install

soak:
	OBJ_CRASH_CYCLES=$(SOAK_CYCLES) $(CARGO) test --release -p obj-engine --test crash -- --nocapture
	OBJ_FAULT_SAMPLE=all OBJ_POWER_CUTS=$(SOAK_POWER_CUTS) $(CARGO) test --release -p obj-engine --test faults -- --nocapture

# New inputs go to target/fuzz-corpus/<target> (not committed); the
# committed seeds and past crashes in fuzz/corpus/<target> are read only.
fuzz:
	@$(CARGO) +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	$(CARGO) +nightly fuzz build -O
	set -eo pipefail; for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$t; \
	  $(CARGO) +nightly fuzz run -O $$t target/fuzz-corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -max_len=131072 -print_final_stats=1 \
	    2>&1 | tee target/fuzz-$$t.log | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY)'; \
	done

# Benchmarks; never part of `make test`. `bench` runs every layer's part;
# each layer adds its own `bench-<layer>` prerequisite.
bench: bench-engine

# The engine against redb, LMDB (heed) and SQLite (rusqlite), side by side in
# one process: prints the markdown tables recorded in docs/performance.md.
# Scale it down with OBJ_BENCH_N, OBJ_BENCH_DOCS, ... (bench/src/bin/report.rs).
# Then criterion's statistics for the read paths (bench/benches/engines.rs).
bench-engine: bench-report bench-criterion

bench-report:
	$(CARGO) run --release -p obj-bench --bin report

bench-criterion:
	$(CARGO) bench -p obj-bench --bench engines

clean:
	$(CARGO) clean

# `make install` into a scratch prefix, then build a C program the way a
# user would: cc prog.c $(pkg-config --cflags --libs obj).
test-install:
	rm -rf target/install-test
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/target/install-test
	PKG_CONFIG_PATH=$(CURDIR)/target/install-test/lib/pkgconfig; export PKG_CONFIG_PATH; \
	  cc tests/c/pkgconfig_prog.c $$(pkg-config --cflags --libs obj) -Wl,-rpath,$(CURDIR)/target/install-test/lib \
	  -o target/install-test/prog && target/install-test/prog target/install-test/prog.obj
