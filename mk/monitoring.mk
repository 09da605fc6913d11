# Monitoring (issue 4): dashboards as code, promtool checks, a PNG preview of the overview.
# Included by the Makefile (-include mk/*.mk); $(BIN) is the venv's bin directory.

# Prometheus the preview reads; empty: start the monitoring test stack here (doubles, exporters, kubo).
PROMETHEUS_URL ?=
DASHBOARD ?= dlnet-overview

.PHONY: dashboards
dashboards: venv ## Regenerate the Grafana dashboard JSON from monitoring/dashboards/generate.py
	@echo ">> generating dashboards (grafana-foundation-sdk) into monitoring/dashboards/json"
	@$(BIN)/python monitoring/dashboards/generate.py

.PHONY: monitoring-check
monitoring-check: venv ## promtool: rules, rule unit tests, the rendered config of ENV; dashboards up to date
	@echo ">> checking alert rules, rule unit tests, dashboards and the Prometheus configuration of $(INVENTORY)"
	@promtool check rules monitoring/rules/*.rules.yml
	@cd monitoring/rules/tests && promtool test rules *.test.yml
	@$(BIN)/python monitoring/dashboards/generate.py --check
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(BIN)/ansible-playbook -i $(INVENTORY) tests/monitoring/render-prometheus.yml -e render_out=$$tmp >/dev/null && \
	  for f in $$tmp/*/prometheus.yml; do promtool check config "$$f"; done

.PHONY: dashboards-preview
dashboards-preview: venv ## Render the overview (DASHBOARD=uid|all) to PNG from live Prometheus data (PROMETHEUS_URL=)
	@echo ">> rendering $(DASHBOARD) to build/dashboards-preview/ from $(or $(PROMETHEUS_URL),a local test stack)"
	@$(BIN)/python scripts/dashboards_preview.py --dashboard $(DASHBOARD) \
	  $(if $(PROMETHEUS_URL),--prometheus $(PROMETHEUS_URL),--demo)
