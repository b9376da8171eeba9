# obj — build, test and run everything from a fresh machine.
#   make demo    build everything and run an end-to-end example
#   make test    every suite plus lint (what CI runs)
#   make soak    long crash/fault runs     make bench   benchmarks (docs/performance.md)
#   make fuzz    each cargo-fuzz target for FUZZ_SECONDS (needs nightly + cargo-fuzz)
SHELL := /bin/bash
CARGO ?= cargo
CRASH_CYCLES ?= 100
SOAK_CYCLES ?= 10000
SOAK_POWER_CUTS ?= 20000
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := open_db btree_ops collection_ops doc_decode doc_json query_json c_api
# Python (python-cffi/): the dev venv, the test venv, the peers benchmark.
PYTHON ?= python3
VENV := .venv
# Pinned: a new ruff release may add findings, and lint must not change under us.
RUFF_VERSION := 0.17.5
# Pinned likewise: test_typing.py checks what mypy --strict reveals of the package's types.
MYPY_VERSION := 2.4.1
VPY := $(VENV)/bin/python
PY_DEV_DEPS := cffi pytest hypothesis pytest-asyncio build 'setuptools>=77' wheel orjson ruff==$(RUFF_VERSION)
# Reinstalled when this list changes (an old venv must not build with old tools).
VENV_STAMP := $(VENV)/.deps-$(shell echo "$(PY_DEV_DEPS)" | cksum | cut -d' ' -f1)
PY_TEST_VENV := target/py-test-venv
SHARED ?= ../shared
BENCH_N ?= 100000

.PHONY: all build demo test test-rust test-c test-cpp test-install c-tools lint header install soak fuzz clean
.PHONY: bench bench-engine bench-report bench-criterion bench-crypto bench-mp bench-capi bench-python venv wheel test-python

all: build

# The default members: engine and capi. The benchmark crate (bench/, with
# redb, LMDB and a bundled SQLite) is built only by `make bench`, and
# checked by clippy in `make lint`.
# The link named by the library's SONAME (libobj.so.<major>), which
# programs linked against target/release/libobj.so look for at run time.
SONAME := libobj.so.$(shell sed -n 's/^version = "\([0-9]*\)\..*/\1/p' Cargo.toml | head -1)

build:
	$(CARGO) build --release
	ln -sf libobj.so target/release/$(SONAME)

demo: build $(VPY)
	$(CARGO) run --release --quiet -p obj-engine --example demo -- target/demo
	OBJ_LIB_PATH=$(CURDIR)/target/release PYTHONPATH=$(CURDIR)/python-cffi $(VPY) python-cffi/examples/demo.py target/demo-py

# Rust: rustfmt and clippy. Python (python-cffi/): ruff, configured in
# python-cffi/pyproject.toml, from the dev venv.
lint: $(VPY)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd python-cffi && ../$(VENV)/bin/ruff check --no-cache .

# The default members (engine, capi); the bench crate has no tests and is
# compiled by `make lint`'s clippy.
test-rust:
	OBJ_CRASH_CYCLES=$(CRASH_CYCLES) $(CARGO) test --release

# The C ABI: C11 programs with -Wall -Wextra -Werror, linked once against
# libobj.so and once statically against libobj.a, run under valgrind.
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -g -Iinclude
C_TESTS := test_api test_threads test_docs test_ops test_hostile test_review11 test_review12 test_review25 test_review28 test_review29 test_review31 test_batches
C_OUT := target/c-tests
STATIC_LIBS := -lpthread -ldl -lm -lrt -lgcc_s -lc
# OBJ_PAGE_POOLS=off: page buffers come from the heap, whose every
# release valgrind sees (a pooled slot stays mapped when freed).
VALGRIND := OBJ_PAGE_POOLS=off valgrind --quiet --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-possibly-lost=no

# The C and C++ tests run under valgrind, and the install test builds
# with pkg-config: on a machine without them, install them from Debian's
# packages (as root), or say what to install.
c-tools:
	@missing=""; for t in valgrind:valgrind c++:g++ pkg-config:pkgconf; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "make test needs:$$missing (e.g. apt-get install$$missing)"; exit 1; fi; \
	fi

test-c: build c-tools
	@mkdir -p $(C_OUT)
	@for t in $(C_TESTS); do \
	  cc $(CFLAGS_TEST) tests/c/$$t.c -o $(C_OUT)/$$t-shared -Ltarget/release -lobj -Wl,-rpath,$(CURDIR)/target/release -lpthread || exit 1; \
	  cc $(CFLAGS_TEST) tests/c/$$t.c -o $(C_OUT)/$$t-static target/release/libobj.a $(STATIC_LIBS) || exit 1; \
	  $(C_OUT)/$$t-static $(C_OUT) || exit 1; \
	  $(VALGRIND) $(C_OUT)/$$t-shared $(C_OUT) || exit 1; \
	done

# The same library from C++17 through the header-only RAII wrapper
# include/obj.hpp: shared and static, the shared build under valgrind.
CXXFLAGS_TEST := -std=c++17 -Wall -Wextra -Werror -g -Iinclude
CPP_TESTS := test_api test_ops test_review12 test_review27

test-cpp: build c-tools
	@mkdir -p $(C_OUT)
	@for t in $(CPP_TESTS); do \
	  c++ $(CXXFLAGS_TEST) tests/cpp/$$t.cpp -o $(C_OUT)/cpp_$$t-shared -Ltarget/release -lobj -Wl,-rpath,$(CURDIR)/target/release -lpthread || exit 1; \
	  c++ $(CXXFLAGS_TEST) tests/cpp/$$t.cpp -o $(C_OUT)/cpp_$$t-static target/release/libobj.a $(STATIC_LIBS) || exit 1; \
	  $(C_OUT)/cpp_$$t-static $(C_OUT) || exit 1; \
	  $(VALGRIND) $(C_OUT)/cpp_$$t-shared $(C_OUT) || exit 1; \
	done

# Per-call cost of the C ABI against the Rust API (point get, insert,
# cursor step); prints ns per operation and the ratios.
bench-capi:
	$(CARGO) bench -p obj-capi --bench capi_vs_rust

bench: bench-capi bench-python

# Regenerate include/obj.h from capi/src (make test fails when it is stale).
header:
	OBJ_UPDATE_HEADER=1 $(CARGO) test -p obj-capi --test header committed_header_matches_sources

PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 include/obj.h $(DESTDIR)$(PREFIX)/include/obj.h
	install -m 644 include/obj.hpp $(DESTDIR)$(PREFIX)/include/obj.hpp
	install -m 755 target/release/libobj.so $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libobj.so
	install -m 644 target/release/libobj.a $(DESTDIR)$(PREFIX)/lib/libobj.a
	install -d $(DESTDIR)$(PREFIX)/share/doc/obj
	install -m 644 docs/query-json.md $(DESTDIR)$(PREFIX)/share/doc/obj/query-json.md
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|'"$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"'|' \
	  capi/obj.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/obj.pc

test: lint test-rust test-c test-cpp test-install test-python

soak:
	OBJ_CRASH_CYCLES=$(SOAK_CYCLES) $(CARGO) test --release -p obj-engine --test crash -- --nocapture
	OBJ_CRASH_CYCLES=$(SOAK_CYCLES) $(CARGO) test --release -p obj-engine --test crash_documents -- --nocapture
	OBJ_FAULT_SAMPLE=all OBJ_POWER_CUTS=$(SOAK_POWER_CUTS) $(CARGO) test --release -p obj-engine --test faults -- --nocapture
	OBJ_FAULT_SAMPLE=all OBJ_POWER_CUTS=$(SOAK_POWER_CUTS) $(CARGO) test --release -p obj-engine --test ops_faults -- --nocapture

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

# Encryption at rest: the same workloads plain and AES-256-GCM, their ratios,
# and the raw cipher's cost per page (engine/examples/crypto_overhead.rs;
# CRYPTO_ROWS rows, best of CRYPTO_ROUNDS). Figures: docs/performance.md.
CRYPTO_ROWS ?= 200000
CRYPTO_ROUNDS ?= 5
bench: bench-crypto
bench-crypto:
	OBJ_BENCH_DIR=$${OBJ_BENCH_DIR:-target} $(CARGO) run --release -p obj-engine --example crypto_overhead -- $(CRYPTO_ROWS) $(CRYPTO_ROUNDS)

# Read throughput of 1, 2 and 4 reader processes beside one writer process,
# obj against SQLite in WAL mode (issue 9): read transactions of 100
# lookups, then of one. A crate of its own outside the workspace, so that
# `make build` never compiles its SQLite.
bench: bench-mp
bench-mp:
	$(CARGO) run --release --manifest-path tools/mp-bench/Cargo.toml
	OBJ_BENCH_LOOKUPS=1 $(CARGO) run --release --manifest-path tools/mp-bench/Cargo.toml

clean:
	$(CARGO) clean

# `make install` into a scratch prefix, then build a C program the way a
# user would: cc prog.c $(pkg-config --cflags --libs obj).
test-install: c-tools
	rm -rf target/install-test
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/target/install-test
	PKG_CONFIG_PATH=$(CURDIR)/target/install-test/lib/pkgconfig; export PKG_CONFIG_PATH; \
	  cc tests/c/pkgconfig_prog.c $$(pkg-config --cflags --libs obj) -Wl,-rpath,$(CURDIR)/target/install-test/lib \
	  -o target/install-test/prog && target/install-test/prog target/install-test/prog.obj
	test -s target/install-test/share/doc/obj/query-json.md

# The Python package (python-cffi/): a dev venv in .venv, a wheel that
# bundles libobj.so, and the tests run against the wheel installed in a
# fresh venv, from a directory where the source tree is not importable.

$(VPY): $(VENV_STAMP)

$(VENV_STAMP):
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q --upgrade $(PY_DEV_DEPS)
	rm -f $(VENV)/.deps-* && touch $@

venv: $(VPY)

wheel: build $(VPY)
	rm -rf python-cffi/dist python-cffi/build python-cffi/obj_db.egg-info
	OBJ_PREBUILT_LIB=$(CURDIR)/target/release/libobj.so $(VPY) -m build --wheel --no-isolation --outdir python-cffi/dist python-cffi
	rm -rf python-cffi/build python-cffi/obj_db.egg-info

test-python: wheel
	rm -rf $(PY_TEST_VENV)
	$(VPY) -m venv $(PY_TEST_VENV)
	$(PY_TEST_VENV)/bin/python -m pip install -q python-cffi/dist/obj_db-*.whl pytest hypothesis pytest-asyncio orjson mypy==$(MYPY_VERSION)
	cd $(PY_TEST_VENV) && OBJ_REPO_ROOT=$(CURDIR) OBJ_EXPECT_INSTALLED=1 bin/python -m pytest -q -p no:cacheprovider \
	  --import-mode=importlib -o asyncio_mode=auto -o asyncio_default_fixture_loop_scope=function -rs $(CURDIR)/python-cffi/tests

bench-python: wheel
	$(VPY) -m pip install -q --force-reinstall --no-deps python-cffi/dist/obj_db-*.whl
	$(VPY) -m pip install -q lmdb msgpack msgspec orjson diskcache
	$(VPY) $(SHARED)/bench/peers.py --n $(BENCH_N) --adapter python-cffi/bench/obj_adapter.py \
	  --only sqlite-json,sqlite-typed,lmdb-msgpack,obj --json target/bench-python.json
	OBJ_PEERS_DIR=$(SHARED)/bench $(VPY) python-cffi/bench/commits.py --n $(BENCH_N)
