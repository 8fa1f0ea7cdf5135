# RNNKit: make test (the test command), make run (the notebook end to end), make bench, make run-mpi.
SHELL := /bin/bash
SWIFT ?= swift
ARGS ?=

.PHONY: all deps data build release test test-sanitizers fuzz run run-stacked run-best run-mpi run-adding bench bench-quick bench-mpi clean

all: build

deps:
	@scripts/install-deps.sh

data:
	@scripts/fetch-mnist.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The library's tests and the trainer's. Some train briefly on MNIST: without it (offline) they are
# skipped with a message saying so, and every other test runs. The README's adding-problem example
# is run in release (a debug build takes a minute over it).
test: deps
	@scripts/fetch-mnist.sh || echo "make test: MNIST is not available; the tests that train on it will say they are skipped"
	$(SWIFT) build -c release --product adding-problem
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing
	@scripts/check-readme-package.sh

# The adding problem with sequences of varied length under Masking (the README's example).
run-adding: deps
	$(SWIFT) run -c release adding-problem $(ARGS)

# The notebook's Model A: summary, ten epochs, test accuracy, image 36 and its prediction.
run: deps data release
	$(SWIFT) run -c release --skip-build train-blas $(ARGS)

# The notebook's Model B (stacked SimpleRNN 16 → 8 → 4).
run-stacked: deps data release
	$(SWIFT) run -c release --skip-build train-blas --units 16,8,4 --output runs/stacked $(ARGS)

# The notebook's claim made true: an LSTM reading the same 28 rows of 28 pixels, to CNN-level
# test accuracy (README: "An RNN at CNN accuracy"). ARGS pass through, e.g. ARGS="--seed 1".
run-best: deps data release
	$(SWIFT) run -c release --skip-build train-blas --cell lstm --units 128 --batch-size 128 --epochs 20 \
		--learning-rate 0.002 --lr-schedule cosine --output runs/best $(ARGS)

bench: deps release
	$(SWIFT) run -c release --skip-build benchmarks $(ARGS)

bench-quick: deps release
	$(SWIFT) run -c release --skip-build benchmarks --quick $(ARGS)

# Ranks against threads on this machine, all-reduce times and the cluster projection (README, MPI).
bench-mpi: deps release
	$(SWIFT) run -c release --skip-build benchmarks-mpi

# The notebook's Model A as NP MPI ranks of one worker each on this machine (README, MPI).
NP ?= 2
MPIRUN_FLAGS = $(if $(filter 0,$(shell id -u)),--allow-run-as-root,)
run-mpi: deps data release
	mpirun $(MPIRUN_FLAGS) --oversubscribe -np $(NP) .build/release/train-blas --workers 1 $(ARGS)

# libFuzzer on every parser (Fuzz/: IDX raw and gzip, safetensors), FUZZ_SECONDS each (default
# 180), each input under AddressSanitizer with a 2 GiB memory cap. The corpus grows in
# .fuzz-corpus/ from the seeds in Fuzz/Corpus/; a crashing input is written to Fuzz/crashes/ and
# fails the target. Longer: make fuzz FUZZ_SECONDS=3600.
FUZZ_SECONDS ?= 180
FUZZ_FLAGS = -c debug --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
fuzz: deps
	@# (gold warns that it cannot export ASan's local symbols; harmless, and hundreds of lines)
	cd Fuzz && $(SWIFT) build $(FUZZ_FLAGS) 2>&1 | grep -v "Cannot export local symbol"; test $${PIPESTATUS[0]} -eq 0
	@set -e; bin=$$(cd Fuzz && $(SWIFT) build $(FUZZ_FLAGS) --show-bin-path); mkdir -p Fuzz/crashes; \
	for target in idx:FuzzIDX safetensors:FuzzSafeTensors; do \
	  corpus=$${target%%:*}; name=$${target##*:}; mkdir -p .fuzz-corpus/$$corpus; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
	  $$bin/$$name .fuzz-corpus/$$corpus Fuzz/Corpus/$$corpus -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -max_len=65536 -print_final_stats=1 -artifact_prefix=Fuzz/crashes/$$name- 2>&1 \
	    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" ; \
	  test $${PIPESTATUS[0]} -eq 0 || { echo "fuzz: $$name found a crash (input in Fuzz/crashes/)"; exit 1; }; \
	done

# The tests under AddressSanitizer (leaks of XCTest's and Foundation's own allocations are
# suppressed by name in Tests/lsan.supp) and ThreadSanitizer (the worker pool, the unsafe pointers).
# Three suites are left to `make test`: PythonInteropTests spends its time in Python,
# KerasTrainerTests in whole trainer runs on MNIST, AddingProblemTests in a release binary; the Keras file code they call runs under the
# sanitizers through KerasFileTests, and the trainer's through TrainerTests and MPITests.
SANITIZER_SKIP = --skip PythonInteropTests --skip KerasTrainerTests --skip AddingProblemTests
# Under ThreadSanitizer only, the single-threaded sweep of every cell, shape and mode straight
# through the backends is left to ASan and `make test` too: it starts no thread, so TSan has
# nothing to find in it, and it is the slowest test under TSan (four minutes of CI).
TSAN_SKIP = --skip BackendAgreementTests.testRecurrentForwardAndBackwardEveryCell
test-sanitizers: deps
	@scripts/fetch-mnist.sh >/dev/null || true
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp:malloc_context_size=10 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan --disable-swift-testing $(SANITIZER_SKIP)
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan --disable-swift-testing $(SANITIZER_SKIP) $(TSAN_SKIP)

clean:
	rm -rf .build .build-asan .build-tsan Fuzz/.build .fuzz-corpus runs
