# RNNKit: make test (the test command), make run (the notebook end to end), make bench.
SWIFT ?= swift
ARGS ?=

.PHONY: all deps data build release test run run-stacked run-best bench bench-quick clean

all: build

deps:
	@scripts/install-deps.sh

data:
	@scripts/fetch-mnist.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The library's tests and the trainer's. Two of them train briefly on MNIST: without it (offline)
# they are skipped with a message saying so, and every other test runs.
test: deps
	@scripts/fetch-mnist.sh || echo "make test: MNIST is not available; the tests that train on it will say they are skipped"
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

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

clean:
	rm -rf .build runs
