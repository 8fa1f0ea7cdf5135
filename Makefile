# RNNKit: make test (the test command), make run (the notebook end to end), make bench, make run-mpi.
SHELL := /bin/bash
SWIFT ?= swift
ARGS ?=

.PHONY: all deps data build release test test-sanitizers fuzz run run-stacked run-best run-mpi run-adding run-classify-ts run-forecast run-char-words bench bench-quick bench-latency bench-mpi clean performance-page benchmarks-page docs

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
# skipped with a message saying so, and every other test runs. The examples (docs/GUIDE.md, docs/examples)
# are run in release (a debug build takes minutes over them).
test: deps
	@scripts/fetch-mnist.sh || echo "make test: MNIST is not available; the tests that train on it will say they are skipped"
	$(SWIFT) build -c release --product adding-problem
	$(SWIFT) build -c release --product classify-ts
	$(SWIFT) build -c release --product forecast
	$(SWIFT) build -c release --product char-words
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing
	@# Again on kernels RNNKit chose: OpenBLAS made to start on its SSE3 fallback, then repaired.
	RNNKIT_BLAS_REHEARSE_FALLBACK=Prescott $(SWIFT) test --skip-build --disable-swift-testing \
		--filter 'BackendAgreementTests|KerasCellFixtureTests|KerasParityTests|GradientCheckTests|BLASCoreTests'
	@scripts/check-readme-package.sh
	@scripts/check-version.sh
	@# The engine keeps to short functions (docs/ENGINE.md): one driver, a file per cell.
	@scripts/function-lengths.py --limit 80 --top 0 Sources/RNNKit/Backends Sources/CSmallKernels \
		|| { echo "a function of the engine (Sources/RNNKit/Backends, Sources/CSmallKernels) is over 80 lines (scripts/function-lengths.py)"; exit 1; }
	@scripts/performance-page.py docs/benchmarks/*.json | diff -q - docs/PERFORMANCE.md >/dev/null \
		|| { echo "docs/PERFORMANCE.md is not what scripts/performance-page.py writes from docs/benchmarks (make performance-page)"; exit 1; }
	@scripts/benchmarks-page.py docs/BENCHMARKS.md docs/benchmarks/*.json | diff -q - docs/BENCHMARKS.md >/dev/null \
		|| { echo "docs/BENCHMARKS.md's tables are not what scripts/benchmarks-page.py writes from docs/benchmarks (make benchmarks-page)"; exit 1; }

# The DocC documentation of the library products (Sources/*/*.docc and the /// comments), with
# every DocC warning an error (a broken symbol link, a parameter documented under the wrong name).
# Archives in .build/plugins/Swift-DocC/outputs/; scripts/docs-coverage.py lists the public symbols
# without documentation (brief counts always, DOCS_COVERAGE=detailed for every name).
DOCS_TARGETS = RNNKit RNNKitKeras RNNKitMPI RNNKitONNX
DOCS_COVERAGE ?= brief
docs: deps
	$(SWIFT) package generate-documentation $(foreach t,$(DOCS_TARGETS),--target $(t)) \
		--warnings-as-errors --experimental-documentation-coverage --coverage-summary-level brief
	@scripts/docs-coverage.py --$(DOCS_COVERAGE) $(foreach t,$(DOCS_TARGETS),.build/plugins/Swift-DocC/outputs/$(t).doccarchive)

# docs/PERFORMANCE.md from the benchmark runs kept in docs/benchmarks, one per CPU
# (swift run -c release benchmarks --json docs/benchmarks/NAME.json).
performance-page:
	scripts/performance-page.py docs/benchmarks/*.json > docs/PERFORMANCE.md

# The per-run tables of docs/BENCHMARKS.md (between its benchmarks-page markers) from the same runs;
# the prose around them is written by hand.
benchmarks-page:
	scripts/benchmarks-page.py docs/BENCHMARKS.md docs/benchmarks/*.json > docs/BENCHMARKS.md.new
	mv docs/BENCHMARKS.md.new docs/BENCHMARKS.md

# The adding problem with sequences of varied length under Masking (docs/GUIDE.md).
run-adding: deps
	$(SWIFT) run -c release adding-problem $(ARGS)

# Speaker recognition on UEA JapaneseVowels (docs/examples/classify-ts.md): seeds 0, 1 and 2, or
# one with SEED=N; the data from $(DATASETS) (default ../shared/datasets).
DATASETS ?= ../shared/datasets
SEED ?= 0 1 2
run-classify-ts: deps
	$(SWIFT) build -c release --product classify-ts
	@set -e; for seed in $(SEED); do \
	  .build/release/classify-ts --train $(DATASETS)/japanese_vowels/JapaneseVowels_TRAIN.ts \
	    --test $(DATASETS)/japanese_vowels/JapaneseVowels_TEST.ts --seed $$seed $(ARGS); \
	done

# Forecasting: the airline passengers' last 24 months from the 120 before them
# (docs/examples/forecast.md). ARGS pass through, e.g. ARGS="--seed 1 --output runs/forecast".
FORECAST_CSV ?= $(DATASETS)/airline/Airline.csv
run-forecast: deps
	$(SWIFT) run -c release forecast --csv $(FORECAST_CSV) --holdout 24 $(ARGS)

# A character-level LSTM model of the lowercase words of Debian's wamerican (make deps installs it),
# against a character bigram, with sampled words (docs/examples/char-words.md). ARGS pass through,
# e.g. ARGS="--seed 1 --output runs/char-words".
run-char-words: deps
	$(SWIFT) run -c release char-words $(ARGS)

# The notebook's Model A: summary, ten epochs, test accuracy, image 36 and its prediction.
run: deps data release
	$(SWIFT) run -c release --skip-build train-blas $(ARGS)

# The notebook's Model B (stacked SimpleRNN 16 → 8 → 4).
run-stacked: deps data release
	$(SWIFT) run -c release --skip-build train-blas --units 16,8,4 --output runs/stacked $(ARGS)

# The notebook's claim made true: an LSTM reading the same 28 rows of 28 pixels, to CNN-level
# test accuracy (docs/ACCURACY.md: "An RNN at CNN accuracy"). ARGS pass through, e.g. ARGS="--seed 1".
run-best: deps data release
	$(SWIFT) run -c release --skip-build train-blas --cell lstm --units 128 --batch-size 128 --epochs 20 \
		--learning-rate 0.002 --lr-schedule cosine --output runs/best $(ARGS)

bench: deps release
	$(SWIFT) run -c release --skip-build benchmarks $(ARGS)

# The latency pass fails if a streaming call allocates, with float, half and bfloat16 weights.
bench-quick: deps release
	$(SWIFT) run -c release --skip-build benchmarks --quick $(ARGS)
	$(SWIFT) run -c release --skip-build latency --quick --rnnkit-only

# The latency of a StreamingSession at batch 1 beside PyTorch and onnxruntime, each call timed
# (docs/LATENCY.md; pip install torch onnx onnxruntime for the other two).
bench-latency: deps release
	$(SWIFT) run -c release --skip-build latency $(ARGS)

# Ranks against threads on this machine, all-reduce times and the cluster projection (docs/MPI.md).
bench-mpi: deps release
	$(SWIFT) run -c release --skip-build benchmarks-mpi

# The notebook's Model A as NP MPI ranks of one worker each on this machine (docs/MPI.md).
NP ?= 2
MPIRUN_FLAGS = $(if $(filter 0,$(shell id -u)),--allow-run-as-root,)
run-mpi: deps data release
	mpirun $(MPIRUN_FLAGS) --oversubscribe -np $(NP) .build/release/train-blas --workers 1 $(ARGS)

# libFuzzer on every reader an attacker can reach (Fuzz/): IDX raw and gzip, safetensors, NumPy's
# .npy and .npz and numeric CSV, the UEA archive's .ts, a .keras file's zip, config.json into a
# model, an HDF5 weights file in memory, a --resume checkpoint;
# FUZZ_SECONDS each (default 180), every input under AddressSanitizer with a 2 GiB memory cap, the
# NumPy, .ts, Keras and checkpoint readers also with no input over 10 s and, but for the HDF5 one, no single
# allocation over 256 MiB. libhdf5 itself asks malloc for whatever length a damaged header claims
# (up to terabytes, in H5C_protect) and fails cleanly when it gets NULL, as it does without the
# sanitizer: allocator_may_return_null=1 gives it that NULL. Its own leaks on damaged headers are
# suppressed by Fuzz/lsan.supp.
# Corpora grow in .fuzz-corpus/ from the seeds in Fuzz/Corpus/ (IDX, safetensors, NumPy, .ts) and, for the
# others, from the shared Keras fixtures (scripts/fuzz-seeds.sh). A crashing input is written to
# Fuzz/crashes/ and fails the target. Longer: make fuzz FUZZ_SECONDS=600; one target: FUZZ_TARGETS=numpy.
FUZZ_SECONDS ?= 180
# FuzzHDF5Weights: libhdf5 1.10 reserves what a crafted header claims (gigabytes) before checking it
# against the file, in the probe's child process. There RNNKit caps the child's address space (the
# file is then refused: "libhdf5 needed more than 1 GiB"), but not under a sanitizer, which needs
# terabytes of it; libFuzzer's per-malloc limit, which the fork inherits, would report the child's
# untouched reservation as a crash. So that target's malloc limit is lifted; -rss_limit_mb still
# catches the memory this process uses, and the probe's time limit ends a child that runs away.
FUZZ_TARGETS ?= idx safetensors numpy ts keras config hdf5 checkpoint
FUZZ_FLAGS = -c debug --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
fuzz: deps
	@# (gold warns that it cannot export ASan's local symbols; harmless, and hundreds of lines)
	cd Fuzz && $(SWIFT) build $(FUZZ_FLAGS) 2>&1 | grep -v "Cannot export local symbol"; test $${PIPESTATUS[0]} -eq 0
	@scripts/fuzz-seeds.sh
	@set -e; bin=$$(cd Fuzz && $(SWIFT) build $(FUZZ_FLAGS) --show-bin-path); mkdir -p Fuzz/crashes; \
	for corpus in $(FUZZ_TARGETS); do \
	  case $$corpus in \
	    idx) name=FuzzIDX; seeds=Fuzz/Corpus/idx; extra="";; \
	    safetensors) name=FuzzSafeTensors; seeds=Fuzz/Corpus/safetensors; extra="";; \
	    numpy) name=FuzzNumPy; seeds=Fuzz/Corpus/numpy; extra="-malloc_limit_mb=256 -timeout=10";; \
	    ts) name=FuzzTS; seeds=Fuzz/Corpus/ts; extra="-malloc_limit_mb=256 -timeout=10";; \
	    keras) name=FuzzKerasArchive; seeds=.fuzz-seeds/keras; extra="-malloc_limit_mb=256 -timeout=10";; \
	    config) name=FuzzKerasConfig; seeds=.fuzz-seeds/config; extra="-malloc_limit_mb=256 -timeout=10";; \
	    hdf5) name=FuzzHDF5Weights; seeds=.fuzz-seeds/hdf5; extra="-timeout=10 -malloc_limit_mb=1048576";; \
	    checkpoint) name=FuzzCheckpoint; seeds=.fuzz-seeds/checkpoint; extra="-malloc_limit_mb=256 -timeout=10";; \
	    *) echo "fuzz: no target $$corpus"; exit 1;; \
	  esac; \
	  mkdir -p .fuzz-corpus/$$corpus; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/lsan.supp ASAN_OPTIONS=allocator_may_return_null=1 $$bin/$$name .fuzz-corpus/$$corpus $$seeds -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 $$extra \
	    -max_len=65536 -print_final_stats=1 -artifact_prefix=Fuzz/crashes/$$name- 2>&1 \
	    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written|ALARM|.*malloc\(.*exceeds)" ; \
	  test $${PIPESTATUS[0]} -eq 0 || { echo "fuzz: $$name found a crash (input in Fuzz/crashes/)"; exit 1; }; \
	done

# The tests under AddressSanitizer (leaks of XCTest's and Foundation's own allocations are
# suppressed by name in Tests/lsan.supp) and ThreadSanitizer (the worker pool, the unsafe pointers).
# Seven suites are left to `make test`: PythonInteropTests spends its time in Python,
# KerasTrainerTests in whole trainer runs on MNIST, the examples' tests (AddingProblemTests,
# ClassifyTSTests, ForecastTests, CharWordsTests) in release binaries, and
# HostileFileTrainerTests measures train-blas's own time and memory, which a sanitizer multiplies;
# the Keras file code they call runs under the sanitizers through KerasFileTests and
# HostileFileTests, and the trainer's through TrainerTests and MPITests.
SANITIZER_SKIP = --skip PythonInteropTests --skip KerasTrainerTests --skip AddingProblemTests --skip HostileFileTrainerTests \
	--skip ClassifyTSTests --skip ForecastTests --skip CharWordsTests
# Under ThreadSanitizer only, the single-threaded sweep of every cell, shape and mode straight
# through the backends is left to ASan and `make test` too: it starts no thread, so TSan has
# nothing to find in it, and it is the slowest test under TSan (four minutes of CI).
TSAN_SKIP = --skip BackendAgreementTests.testRecurrentForwardAndBackwardEveryCell
test-sanitizers: deps
	@scripts/fetch-mnist.sh >/dev/null || true
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp:malloc_context_size=10 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan --disable-swift-testing $(SANITIZER_SKIP)
	@# OpenBLAS re-initialised in process (started on its SSE3 fallback, then repaired), then switched core by core.
	RNNKIT_BLAS_REHEARSE_FALLBACK=Prescott LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp:malloc_context_size=10 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan --disable-swift-testing --filter BLASCoreTests
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan --disable-swift-testing $(SANITIZER_SKIP) $(TSAN_SKIP)

clean:
	rm -rf .build .build-asan .build-tsan Fuzz/.build .fuzz-corpus .fuzz-seeds runs
