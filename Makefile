# tidewater: `make run` serves the API locally, `make test` runs every test.
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools/venv/bin
export PATH := $(TOOLS):$(PATH)
export SAM_CLI_TELEMETRY := 0

API_PORT ?= 3000
DDB_PORT ?= 8000
TEST_DDB_PORT ?= 8765
BENCH_DDB_PORT ?= 8766
# The local stack `make test` starts for its short fuzz run, on ports of its own.
TEST_API_PORT ?= 3765
TEST_STACK_DDB_PORT ?= 8767
TEST_LAMBDA_PORT ?= 9765
FUZZ_EXAMPLES ?= 100
TEST_FUZZ_EXAMPLES ?= 10
FUNCTIONS := $(notdir $(wildcard functions/*))
SUB ?= alice
GROUPS ?=

.PHONY: tools run test lint build token bench fuzz

tools:
	@./scripts/install-tools.sh

run: tools
	@mkdir -p .run && API_PORT=$(API_PORT) DDB_PORT=$(DDB_PORT) DDB_LOG=.run/dynamodb.log ./scripts/with-dynamodb.sh ./scripts/serve-local.sh

test: tools lint
	DDB_PORT=$(TEST_DDB_PORT) ./scripts/with-dynamodb.sh cargo test --workspace --locked --no-fail-fast
	API_PORT=$(TEST_API_PORT) DDB_PORT=$(TEST_STACK_DDB_PORT) LAMBDA_PORT=$(TEST_LAMBDA_PORT) FUZZ_OWN_STACK=1 \
	  FUZZ_EXAMPLES=$(TEST_FUZZ_EXAMPLES) ./scripts/fuzz.sh

# schemathesis against the API `make run` serves on API_PORT: every operation and check, as
# a customer, support and privacy, FUZZ_EXAMPLES examples per operation, a fixed seed.
fuzz: tools
	API_PORT=$(API_PORT) FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ./scripts/fuzz.sh

lint:
	cfn-lint template.yaml
	sam validate --lint --template template.yaml

# One cargo-lambda build of every function (shared dependencies built once, links in
# parallel), then sam build, whose per-function `cargo lambda build --bin <fn>` resolves the
# same workspace features and finds each bootstrap already fresh.
build: tools
	cargo lambda build --release --arm64 --locked $(addprefix --bin ,$(FUNCTIONS))
	sam build --parallel --template template.yaml

# Release binaries (x86_64 for timing and memory, arm64 bootstraps for size), then the
# harness against DynamoDB Local. Prints the report and writes bench/report.md and .json.
bench: tools
	cargo build --release --locked $(addprefix -p ,$(FUNCTIONS))
	cargo build --release --locked -p tidewater-bench --bin bench -p tidewater-local --bin bench-summarize
	cargo lambda build --release --arm64 --locked $(addprefix -p ,$(FUNCTIONS))
	DDB_PORT=$(BENCH_DDB_PORT) ./scripts/with-dynamodb.sh target/release/bench

token:
	@# No -p: the workspace-wide feature set, so it reuses what `cargo build --workspace` built.
	@cargo run --quiet --locked --bin token -- "$(SUB)" "$(GROUPS)"
