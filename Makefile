# obj — build, test and run everything from a fresh machine.
#   make demo    build everything and run an end-to-end example
#   make test    every suite plus lint (what CI runs)
#   make soak    long crash/fault runs     make bench   benchmarks
SHELL := /bin/bash
CARGO ?= cargo
CRASH_CYCLES ?= 50
SOAK_CYCLES ?= 5000

.PHONY: all build demo test test-rust lint soak bench clean

all: build

build:
	$(CARGO) build --release --workspace

demo: build
	$(CARGO) run --release --quiet -p obj-engine --example demo -- target/demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	OBJ_CRASH_CYCLES=$(CRASH_CYCLES) $(CARGO) test --release --workspace

test: lint test-rust

soak:
	OBJ_CRASH_CYCLES=$(SOAK_CYCLES) $(CARGO) test --release -p obj-engine --test crash -- --nocapture

clean:
	$(CARGO) clean
