# tidewater: `make run` serves the API locally, `make test` runs every test.
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools/venv/bin
export PATH := $(TOOLS):$(PATH)
export SAM_CLI_TELEMETRY := 0

API_PORT ?= 3000
DDB_PORT ?= 8000
TEST_DDB_PORT ?= 8765
SUB ?= alice
GROUPS ?=

.PHONY: tools run test lint build token bench

tools:
	@./scripts/install-tools.sh

run: tools
	@mkdir -p .run && API_PORT=$(API_PORT) DDB_PORT=$(DDB_PORT) DDB_LOG=.run/dynamodb.log ./scripts/with-dynamodb.sh ./scripts/serve-local.sh

test: tools lint
	DDB_PORT=$(TEST_DDB_PORT) ./scripts/with-dynamodb.sh cargo test --workspace --locked

lint:
	cfn-lint template.yaml
	sam validate --lint --template template.yaml

build: tools
	sam build --template template.yaml

token:
	@cargo run --quiet --locked -p tidewater-local --bin token -- "$(SUB)" "$(GROUPS)"
