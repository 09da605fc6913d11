# Participant services (issue 5): federation, compliance, bridge. Included by the main Makefile.

SERVICES_IMAGE ?= dlnet/services:$(IMAGE_TAG)

.PHONY: image-services
image-services: venv engine ## Build the services image (dlnet/services); make images builds it too
	@echo ">> building dlnet/services:$(IMAGE_TAG)"
	@$(BIN)/python scripts/build_images.py services

.PHONY: test-services
test-services: venv deps ## Service tests: real PostgreSQL, real kubo swarm, Horizon double
	@echo ">> testing the federation, compliance and bridge services"
	@$(MAKE) kubo
	@$(BIN)/pytest tests/services $(PYTEST_ARGS)

.PHONY: lint-services
lint-services: venv ## Lint the services' image and roles
	@echo ">> linting the services' image and roles"
	@$(BIN)/hadolint images/services/Dockerfile
	@$(BIN)/yamllint --strict roles/dlnet_service inventories/*/group_vars/all/services.yml
	@$(BIN)/ansible-lint --profile production -q roles/dlnet_service

.PHONY: bench-services
bench-services: venv ## Federation lookups/s and bridge submissions/s (against the doubles), with p99
	@echo ">> benchmarking the services"
	@$(BIN)/python scripts/bench_services.py
