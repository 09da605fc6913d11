# dlnet — the front door. `make` alone lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

include versions.env
export

ENV ?= local
INVENTORY ?= inventories/$(ENV)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Extra CA bundle for builds behind a TLS-intercepting proxy (copied into builder stages only).
EXTRA_CA_BUNDLE ?= $(firstword $(wildcard $(SSL_CERT_FILE) /etc/ssl/certs/ca-certificates.crt))
ANSIBLE_FLAGS ?=
# Real builds of stellar-core and Horizon that CI keeps beside the clone (../shared/bin): `make test`
# deploys them when present (STELLAR_CORE_BIN/HORIZON_BIN given explicitly win). The kit itself never
# reads that folder: operators supply artifacts/ (or `make fetch-artifacts`).
SHARED_BIN := $(abspath $(CURDIR)/../shared/bin)
TEST_BINARIES := $(if $(wildcard $(SHARED_BIN)/stellar-core),STELLAR_CORE_BIN="$${STELLAR_CORE_BIN:-$(SHARED_BIN)/stellar-core}" HORIZON_BIN="$${HORIZON_BIN:-$(SHARED_BIN)/stellar-horizon}")
IMAGE ?=
# RESET=1: accept a changed passphrase (a new network); only after `make clean`.
RESET ?= 0

.PHONY: help
help: ## Show this help
	@echo "dlnet: private Stellar network for decentralised deep-learning training"
	@echo "usage: make <target> [ENV=local|sample|...]"
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

$(BIN)/.stamp: pyproject.toml
	@echo ">> creating the Python environment ($(VENV)) with pinned dependencies"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[deploy,dev,market]'
	@touch $@

.PHONY: venv
venv: $(BIN)/.stamp ## Create the Python environment (dlnet, ansible, linters)

.PHONY: deps
deps: ## Install the Debian packages the tests and image builds need
	@echo ">> checking Debian packages (deps/apt-*.txt)"
	@scripts/install-deps.sh

.PHONY: engine
engine: ## Make sure a Docker engine is running (installs docker.io where allowed)
	@echo ">> checking the Docker engine"
	@scripts/ensure-docker.sh

build/bin/ipfs: versions.env
	@echo ">> building kubo v$(KUBO_VERSION) from the Go module proxy"
	@mkdir -p build/bin
	@GOTOOLCHAIN=$(KUBO_GO_TOOLCHAIN) CGO_ENABLED=0 GOBIN=$(CURDIR)/build/bin go install github.com/ipfs/kubo/cmd/ipfs@v$(KUBO_VERSION)
	@touch $@

.PHONY: kubo
kubo: build/bin/ipfs ## Build the pinned kubo (IPFS) binary

.PHONY: images
images: venv engine deps kubo ## Build every image that can be built here (IMAGE=name for one)
	@echo ">> building images $(or $(IMAGE),(all))"
	@$(BIN)/python scripts/build_images.py $(IMAGE)

.PHONY: check
check: venv ## Preflight: validate the inventory and the quorum (changes nothing)
	@echo ">> preflight of $(INVENTORY)"
	@$(BIN)/dlnet check -i $(INVENTORY) $(if $(filter 1,$(RESET)),--reset)

.PHONY: up
up: venv ## Deploy the network described by inventories/$(ENV) (default: local)
	@$(BIN)/dlnet artifacts fetch -i $(INVENTORY) --if-missing
	@$(MAKE) check
	@$(MAKE) images
	@echo ">> deploying $(INVENTORY)"
	@$(BIN)/ansible-playbook -i $(INVENTORY) deploy/site.yml $(if $(filter 1,$(RESET)),-e dlnet_reset=true) $(ANSIBLE_FLAGS)

.PHONY: deploy-check
deploy-check: venv ## Dry run of `make up` (--check --diff)
	@echo ">> dry run of $(INVENTORY)"
	@$(BIN)/ansible-playbook -i $(INVENTORY) deploy/site.yml --check --diff $(ANSIBLE_FLAGS)

.PHONY: down
down: venv ## Stop the network, keeping keys, ledgers and data
	@echo ">> stopping $(INVENTORY)"
	@$(BIN)/ansible-playbook -i $(INVENTORY) deploy/stop-network.yml $(ANSIBLE_FLAGS)

.PHONY: clean
clean: venv ## Remove the network's containers and data (asks first; FORCE=1 skips)
	@echo ">> removing $(INVENTORY): containers, ledgers, IPFS data (keys are kept)"
	@if [ "$${FORCE:-0}" != 1 ]; then read -r -p "Delete all ledger and IPFS data of $(ENV)? Type the environment name: " ans; [ "$$ans" = "$(ENV)" ] || { echo "aborted"; exit 1; }; fi
	@$(BIN)/ansible-playbook -i $(INVENTORY) deploy/remove-network.yml $(ANSIBLE_FLAGS)

.PHONY: status
status: venv ## Health of every component, as a table (ARGS=--json for JSON)
	@$(BIN)/dlnet status -i $(INVENTORY) $(ARGS)

.PHONY: lint
lint: venv ## ruff, yamllint, ansible-lint (production), hadolint, shellcheck, playbook syntax
	@echo ">> linting"
	@$(BIN)/ruff check dlnet tests scripts
	@$(BIN)/yamllint --strict .
	@$(BIN)/ansible-lint --profile production -q
	@$(BIN)/hadolint images/*/Dockerfile
	@$(BIN)/shellcheck .ci/run scripts/*.sh images/*/*.sh
	@for p in deploy/*.yml; do $(BIN)/ansible-playbook -i inventories/local --syntax-check "$$p" >/dev/null; done

.PHONY: test
test: venv deps engine ## Lint, then every test (builds images, deploys inventories/local)
	@echo ">> testing"
	@$(MAKE) lint
	@$(MAKE) kubo
	@$(TEST_BINARIES) $(BIN)/pytest $(PYTEST_ARGS)

.PHONY: bench
bench: venv engine ## Benchmarks, printed as numbers and ratios
	@echo ">> benchmarks (scripts/bench_*.py)"
	@for b in scripts/bench_*.py; do echo ">> $$b"; $(TEST_BINARIES) $(BIN)/python "$$b"; done

.PHONY: fetch-artifacts
fetch-artifacts: venv ## Fetch the official stellar-core/Horizon (verified) into artifacts/ (make up does when missing)
	@echo ">> fetching the official stellar-core and Horizon from SDF's apt repository"
	@$(BIN)/dlnet artifacts fetch -i $(INVENTORY)

# Fragments for further subsystems (monitoring, services, ...): each adds its own targets.
-include mk/*.mk
