# Participant services (issue 5): federation, compliance, bridge. Included by the main Makefile.

SERVICES_IMAGE ?= dlnet/services:$(IMAGE_TAG)
SERVICES_CONTEXT := build/context/services

.PHONY: image-services
image-services: venv engine ## Build the services image (dlnet/services) from the local base image
	@echo ">> building $(SERVICES_IMAGE)"
	@rm -rf $(SERVICES_CONTEXT) && mkdir -p $(SERVICES_CONTEXT)
	@cp images/services/Dockerfile $(SERVICES_CONTEXT)/
	@if [ -n "$(EXTRA_CA_BUNDLE)" ] && [ -f "$(EXTRA_CA_BUNDLE)" ]; then cp "$(EXTRA_CA_BUNDLE)" $(SERVICES_CONTEXT)/extra-ca.crt; else : > $(SERVICES_CONTEXT)/extra-ca.crt; fi
	@$(BIN)/python -m pip wheel -q --no-deps -w $(SERVICES_CONTEXT) .
	@DOCKER_BUILDKIT=0 docker build --quiet --network host -t $(SERVICES_IMAGE) \
	  --build-arg BASE_IMAGE=dlnet/base:$(DEBIAN_SUITE) --build-arg IMAGE_VERSION=$(IMAGE_TAG) $(SERVICES_CONTEXT) >/dev/null

.PHONY: test-services
test-services: venv deps ## Service tests: real PostgreSQL, real kubo swarm, Horizon double
	@echo ">> testing the federation, compliance and bridge services"
	@$(MAKE) kubo
	@$(BIN)/pytest tests/services $(PYTEST_ARGS)

.PHONY: lint-services
lint-services: venv ## Lint the services' image and roles
	@echo ">> linting the services' image and roles"
	@$(BIN)/hadolint images/services/Dockerfile
	@$(BIN)/yamllint --strict roles/dlnet_federation roles/dlnet_compliance roles/dlnet_bridge inventories/*/group_vars/all/services.yml
	@$(BIN)/ansible-lint --profile production -q roles/dlnet_federation roles/dlnet_compliance roles/dlnet_bridge

.PHONY: bench-services
bench-services: venv ## Federation lookups/s and bridge submissions/s (against the doubles), with p99
	@echo ">> benchmarking the services"
	@$(BIN)/python scripts/bench_services.py
