# tidewater: `make run` serves the API locally, `make test` runs every test.
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools/venv/bin
export PATH := $(TOOLS):$(PATH)
export SAM_CLI_TELEMETRY := 0

API_PORT ?= 3000
DDB_PORT ?= 8000
LAMBDA_PORT ?= 9000
# `make run REGIONS=...`: the replicator's control API; each region's DynamoDB Local on the ports after it.
REPLICATION_PORT ?= 8400
TEST_DDB_PORT ?= 8765
BENCH_DDB_PORT ?= 8766
# `make chaos`: seed, the workload's time limit and where its report goes (bench/README.md).
CHAOS_SEED ?= 42
CHAOS_SECONDS ?= 210
CHAOS_REPORT ?= bench/chaos
# `make chaos REGIONS=2` (scripts/chaos-regions.sh): its 4N+1 ports from here, its report.
CHAOS_REGIONS_PORT ?= 8420
CHAOS_REGIONS_REPORT ?= bench/chaos-regions
# The short one `make test` runs beside the chaos and fuzz runs, on ports of its own.
TEST_CHAOS_REGIONS_PORT ?= 8430
# The local stack `make test` starts for its short fuzz run, on ports of its own.
TEST_API_PORT ?= 3765
TEST_STACK_DDB_PORT ?= 8767
TEST_LAMBDA_PORT ?= 9765
# The stack `make test` starts for the Python client's tests (scripts/test-python-client.sh).
TEST_PY_API_PORT ?= 3766
TEST_PY_DDB_PORT ?= 8768
TEST_PY_PROXY_PORT ?= 8769
TEST_PY_LAMBDA_PORT ?= 9766
FUZZ_EXAMPLES ?= 100
TEST_FUZZ_EXAMPLES ?= 10
FUNCTIONS := $(notdir $(wildcard functions/*))
SUB ?= alice
GROUPS ?=

.PHONY: tools run test lint build token bench chaos sim redrive migrate fuzz failover unmerged

tools:
	@./scripts/install-tools.sh

# With `make run REGIONS=...` going: moves every session whose home is FROM to TO under a new
# epoch, and prints the RPO, what TO lacked of FROM at that moment (README, Multi-region).
failover:
	@[ -n "$(FROM)" ] && [ -n "$(TO)" ] || { echo "usage: make failover FROM=<region> TO=<region> [FENCE=off]" >&2; exit 2; }
	@curl -sS --fail-with-body -X POST "http://127.0.0.1:$(REPLICATION_PORT)/failover?from=$(FROM)&to=$(TO)$(if $(FENCE),&fence=$(FENCE))"; echo

# With DYNAMODB_ENDPOINT set, no DynamoDB Local is started: the stack uses that endpoint.
# With REGIONS=a,b one stack per region and the replicator (scripts/serve-regions.sh).
run: export RUN_STARTED_NS := $(shell date +%s%N)
run: export API_PORT := $(API_PORT)
run: export LAMBDA_PORT := $(LAMBDA_PORT)
run: export REPLICATION_PORT := $(REPLICATION_PORT)
run:
	@# The tools make run needs install while the build runs; serve-local.sh then finds it built.
	@mkdir -p .run && { ./scripts/install-tools.sh run & ./scripts/build-local.sh; built=$$?; wait $$! && [ $$built = 0 ]; }
	@if [ -n "$(REGIONS)" ]; then REGIONS=$(REGIONS) DDB_PORT=$(DDB_PORT) ./scripts/serve-regions.sh; \
	elif [ -n "$(DYNAMODB_ENDPOINT)" ]; then ./scripts/serve-local.sh; \
	else DDB_PORT=$(DDB_PORT) DDB_LOG=.run/dynamodb.log ./scripts/with-dynamodb.sh ./scripts/serve-local.sh; fi

# After the cargo tests: Ctrl-C stops all of `make run`, every listener of the local stack is
# on loopback, then a short seeded chaos run and, beside it, a short fuzz run against a local
# stack of its own and a short chaos run across two regions; then the Python client's lint, type check and tests against another.
test: tools lint
	cargo build --workspace --bins --locked
	DDB_PORT=$(TEST_DDB_PORT) ./scripts/with-dynamodb.sh cargo test --workspace --locked --no-fail-fast
	./scripts/test-ctrl-c.sh
	./scripts/test-loopback.sh
	@# The chaos run and the fuzz run, each with a stack of its own, at the same time; the fuzz
	@# run's output follows the chaos run's, and either failing fails the target.
	CHAOS_SESSIONS=12 CHAOS_APPENDS=200 CHAOS_SECONDS=600 FUNCTION_CONCURRENCY=8 CHAOS_REPORT=target/chaos-test ./scripts/chaos.sh & chaos=$$!; \
	CHAOS_SESSIONS=6 CHAOS_APPENDS=120 CHAOS_WORKERS=8 CHAOS_SECONDS=600 CHAOS_OUTAGE_SECONDS=5 FUNCTION_CONCURRENCY=4 \
	  GATEWAY_HOMING=off FORWARD_TIMEOUT_MS=6000 CHAOS_REGIONS_PORT=$(TEST_CHAOS_REGIONS_PORT) CHAOS_REPORT=target/chaos-regions-test ./scripts/chaos-regions.sh \
	  >target/chaos-regions-test.log 2>&1 & regions=$$!; \
	API_PORT=$(TEST_API_PORT) DDB_PORT=$(TEST_STACK_DDB_PORT) LAMBDA_PORT=$(TEST_LAMBDA_PORT) FUZZ_OWN_STACK=1 \
	  FUZZ_EXAMPLES=$(TEST_FUZZ_EXAMPLES) ./scripts/fuzz.sh >target/fuzz-test.log 2>&1; fuzz=$$?; \
	wait $$chaos; chaos=$$?; wait $$regions; regions=$$?; cat target/fuzz-test.log target/chaos-regions-test.log; \
	echo "chaos run: exit $$chaos, fuzz run: exit $$fuzz, chaos run across regions: exit $$regions"; \
	[ $$chaos = 0 ] && [ $$fuzz = 0 ] && [ $$regions = 0 ]
	PY_API_PORT=$(TEST_PY_API_PORT) PY_DDB_PORT=$(TEST_PY_DDB_PORT) PY_PROXY_PORT=$(TEST_PY_PROXY_PORT) \
	  PY_LAMBDA_PORT=$(TEST_PY_LAMBDA_PORT) ./scripts/test-python-client.sh

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

# Release binaries (x86_64 for timing and memory; arm64 bootstraps for size, built as `make
# build` builds them, so either reuses the other's), then the harness against DynamoDB Local.
# Prints the report and writes bench/report.md and .json.
bench: tools
	cargo build --release --locked $(addprefix -p ,$(FUNCTIONS))
	cargo build --release --locked -p tidewater-bench --bin bench -p tidewater-local --bin bench-summarize
	cargo lambda build --release --arm64 --locked $(addprefix --bin ,$(FUNCTIONS))
	# A second DynamoDB Local on the next port: the other region of the regions section.
	DDB_PORT=$$(($(BENCH_DDB_PORT) + 1)) DDB_JAVA_OPTS= ./scripts/with-dynamodb.sh sh -c \
	  'BENCH_SECOND_DYNAMODB="$$AWS_ENDPOINT_URL_DYNAMODB" DDB_PORT=$(BENCH_DDB_PORT) exec ./scripts/with-dynamodb.sh target/release/bench'

# DynamoDB Local, a fault-injecting proxy and the whole local stack, under a seeded concurrent
# workload; checks every guarantee afterwards. Prints and writes bench/chaos.md and .json.
# With REGIONS=2: a stack per region and the replicator, requests to random regions, lag,
# pauses, an outage and a failover; checks every region; writes bench/chaos-regions.md and .json.
chaos: tools
	cargo build --workspace --bins --locked
	if [ -n "$(REGIONS)" ]; then \
	  REGIONS=$(REGIONS) CHAOS_REGIONS_PORT=$(CHAOS_REGIONS_PORT) CHAOS_SEED=$(CHAOS_SEED) CHAOS_SECONDS=$(CHAOS_SECONDS) \
	    CHAOS_REPORT=$(CHAOS_REGIONS_REPORT) ./scripts/chaos-regions.sh; \
	else CHAOS_SEED=$(CHAOS_SEED) CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_REPORT=$(CHAOS_REPORT) ./scripts/chaos.sh; fi

# The lifecycle simulation, long: SEED and STEPS (tests/support/sim; `make test` runs 400 steps).
# SIM_KNOWN=none also fails on the defects it lists as known; SIM_PARALLEL eras run at once (the
# cores, at most 4). Prints its report and any shrunk failure.
SEED ?= 20261207
STEPS ?= 100000
SIM_DDB_PORT ?= 8768
sim:
	SIM_SEED=$(SEED) SIM_STEPS=$(STEPS) DDB_PORT=$(SIM_DDB_PORT) ./scripts/with-dynamodb.sh \
	  cargo test --locked --test integration simulation -- --nocapture 2>&1 | grep -v '^{"'; exit $${PIPESTATUS[0]}

# Runbook: re-arm every session whose summary is due but unwritten (records in the summarize
# DLQ, or lost), then one janitor pass (records in the sweep DLQ, cut-off deletes and purges).
# Defaults to make run's DynamoDB Local and salt; set AWS_ENDPOINT_URL_DYNAMODB=, TABLE_NAME
# and RECEIPT_SALT (with AWS credentials) for a deployed table.
redrive:
	RECEIPT_SALT=$${RECEIPT_SALT:-tidewater-local-receipt-salt-do-not-deploy} \
	AWS_ENDPOINT_URL_DYNAMODB=$${AWS_ENDPOINT_URL_DYNAMODB-http://127.0.0.1:$(DDB_PORT)} AWS_REGION=$${AWS_REGION:-us-east-1} \
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-local} \
	cargo run --quiet --locked -p tidewater-local --bin redrive

# After a failover, once the old home is back: the turns no session's order holds (local/src/bin/unmerged.rs).
unmerged:
	AWS_ENDPOINT_URL_DYNAMODB=$${AWS_ENDPOINT_URL_DYNAMODB-http://127.0.0.1:$(DDB_PORT)} AWS_REGION=$${AWS_REGION:-us-east-1} \
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-local} \
	cargo run --quiet --locked -p tidewater-local --bin unmerged

# Seals content written before encryption, in place and resumably (local/src/bin/migrate.rs).
# With KMS_KEY_ID set, KMS wraps the data keys it makes, as the functions' does.
migrate:
	MASTER_KEYS="$${MASTER_KEYS:-$$(cat .run/master-key 2>/dev/null)}" \
	RECEIPT_SALT=$${RECEIPT_SALT:-tidewater-local-receipt-salt-do-not-deploy} \
	HASH_KEY=$${HASH_KEY:-tidewater-local-hash-key-do-not-deploy-anywhere} \
	AWS_ENDPOINT_URL_DYNAMODB=$${AWS_ENDPOINT_URL_DYNAMODB-http://127.0.0.1:$(DDB_PORT)} AWS_REGION=$${AWS_REGION:-us-east-1} \
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-local} \
	cargo run --quiet --locked -p tidewater-local --bin migrate

token:
	@# No -p: the workspace-wide feature set, so it reuses what `cargo build --workspace` built.
	@API_PORT=$(API_PORT) cargo run --quiet --locked --bin token -- "$(SUB)" "$(GROUPS)"
