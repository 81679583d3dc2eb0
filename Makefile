# The README's two commands: `make run` (the main job) and `make test` (the
# whole suite). Both install what is missing first (scripts/setup.sh) and are
# quick when everything is already there.

SHELL := /bin/bash
CARGO ?= cargo
HDF5_DIR ?= $(firstword $(wildcard /usr/lib/*/hdf5/serial))
BIN := target/release/chunkql

.PHONY: setup setup-hdf5 build run test lint bench fmt

setup:
	@scripts/setup.sh

setup-hdf5:
	@scripts/setup.sh --hdf5

build: setup
	$(CARGO) build --release

## Main job: train the default agent (Diffusion-QL, H = 4) on the default task
## (pendulum, medium data generated on first use) and print its score.
run: build
	$(BIN) train

## The whole test suite, HDF5 readers included.
test: setup-hdf5
	OMP_NUM_THREADS=1 HDF5_DIR=$(HDF5_DIR) $(CARGO) test --features hdf5
	python3 scripts/results.py check

## Formatting, clippy (also without the `cli` feature: the library, its
## tests, examples and benches) and rustdoc, warnings as errors (CI runs it after
## `make test`).
lint: setup-hdf5
	$(CARGO) fmt --check
	HDF5_DIR=$(HDF5_DIR) $(CARGO) clippy --all-targets --features hdf5 -- -D warnings
	HDF5_DIR=$(HDF5_DIR) $(CARGO) clippy --all-targets --no-default-features --features hdf5 -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

## Criterion benches and the numpy comparison (figures in docs/benchmarks.md).
bench: setup
	$(CARGO) bench --bench sampling --bench update --bench env_step
	.venv/bin/python bench/numpy_sampling.py

fmt:
	$(CARGO) fmt --all
