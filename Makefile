# hpcwatch: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian 12 packages the tests start for real; each entry is package:binary-that-proves-it.
DEB_PKGS := munge:munged mariadb-server:mariadbd slurm-wlm:slurmctld slurmdbd:slurmdbd \
	prometheus:prometheus prometheus-alertmanager:amtool prometheus-pushgateway:prometheus-pushgateway \
	victoria-metrics:vmalert prometheus-node-exporter:prometheus-node-exporter chromium:chromium \
	kubernetes-client:kubectl systemd:systemd-analyze openssl:openssl
PYTEST_ARGS ?=

.PHONY: run test deps venv generate check-generated demo lint bench clean

run: venv generate
	$(BIN)/hpcwatch serve --agent node

test: deps venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Installs missing Debian packages when root; otherwise says what is missing and carries on
# (tests that need a missing daemon skip with that message, or fail when CI=true).
deps:
	@missing=""; for pb in $(DEB_PKGS); do p=$${pb%%:*}; b=$${pb##*:}; \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || [ -x /usr/bin/$$b ] || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "deps: installing$$missing"; \
	  created=0; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; rc=$$?; \
	  [ $$created = 1 ] && rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	else echo "deps: missing Debian packages:$$missing (run 'make deps' as root on Debian 12)"; fi

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

generate: venv
	$(BIN)/hpcwatch generate

check-generated: venv
	$(BIN)/hpcwatch generate --check

demo: deps venv
	$(BIN)/hpcwatch demo

lint: venv
	$(BIN)/ruff check .

bench: venv
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
