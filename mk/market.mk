# The training market (issue 11): the paper's initiator, partners and validators on the running network.
# Included by the Makefile; ARGS passes flags, e.g. `make demo ARGS="--partners 5 --rounds 4 --json"`.

.PHONY: demo
demo: venv ## Market demo on the running network: 1 initiator, 3 partners (1 malicious), 2 validators, 3 rounds
	@echo ">> dlnet market demo on $(INVENTORY) $(ARGS) (plot: build/market-demo.png)"
	@$(BIN)/dlnet market demo -i $(INVENTORY) $(ARGS)

.PHONY: test-market
test-market: venv ## Market unit tests and the market on the Horizon double (no network)
	@echo ">> market tests (tests/market, without the real network)"
	@$(BIN)/pytest -q tests/market --deselect tests/market/test_market_real.py $(PYTEST_ARGS)

.PHONY: bench-market
bench-market: venv ## One market round's wall time, ledgers and transactions for 3 and 20 partners
	@echo ">> scripts/bench_market.py"
	@$(BIN)/python scripts/bench_market.py
