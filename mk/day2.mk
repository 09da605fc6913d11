# Day-2 operations (issue 3): the dlnet CLI against inventories/$(ENV). Included by the main Makefile.
# ARGS passes extra flags, e.g. `make upgrade ARGS="--to-latest --max-tx-set-size 1000"`.

.PHONY: upgrade
upgrade: venv ## Arm a network upgrade on every validator and wait for the ledger (ARGS=--to-latest ...)
	@echo ">> upgrading the network of $(INVENTORY) $(ARGS)"
	@$(BIN)/dlnet upgrade -i $(INVENTORY) $(ARGS)

.PHONY: seed
seed: venv ## Create the DLC issuer and distributor, flags, supply (idempotent; ARGS=--lock-root --yes)
	@echo ">> seeding DLC on $(INVENTORY) $(ARGS)"
	@$(BIN)/dlnet seed -i $(INVENTORY) $(ARGS)

.PHONY: exporter
exporter: venv ## Run the dlnet Prometheus exporter in the foreground (port dlnet_exporter_port, 9470)
	@echo ">> dlnet exporter for $(INVENTORY)"
	@$(BIN)/dlnet exporter -i $(INVENTORY) $(ARGS)

.PHONY: test-day2
test-day2: venv ## Day-2 CLI tests against the doubles (integration tests skip without artifacts)
	@echo ">> day-2 tests (tests/day2)"
	@$(BIN)/pytest -q tests/day2 $(PYTEST_ARGS)

.PHONY: bench-day2
bench-day2: venv ## Day-2 benchmarks only: exporter scrape time, ledgers for 1,000 trustlines
	@echo ">> scripts/bench_day2.py"
	@$(BIN)/python scripts/bench_day2.py

.PHONY: drill
drill: venv ## Fault drills on the running network: stop, wipe, kill, measure, restore (ARGS="--only quorum-loss --json")
	@echo ">> drilling the network of $(INVENTORY) $(ARGS)"
	@$(BIN)/dlnet drill -i $(INVENTORY) $(ARGS)

.PHONY: rolling-upgrade
rolling-upgrade: venv ## Apply new stellar-core/Horizon images or validator config one validator at a time, gated
	@$(MAKE) check
	@$(MAKE) images
	@echo ">> rolling upgrade of $(INVENTORY)"
	@$(BIN)/ansible-playbook -i $(INVENTORY) deploy/rolling-upgrade.yml $(ANSIBLE_FLAGS)

.PHONY: rotate-key
rotate-key: venv ## Apply a pending validator key (dlnet keys rotate <validator>) one validator at a time, proven safe
	@echo ">> key rotation on $(INVENTORY)"
	@$(BIN)/ansible-playbook -i $(INVENTORY) deploy/rotate-key.yml $(ANSIBLE_FLAGS)
