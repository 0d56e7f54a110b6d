# hpcwatch: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian 12 packages the tests start for real; each entry is package:binary-that-proves-it.
DEB_PKGS := munge:munged mariadb-server:mariadbd slurm-wlm:slurmctld slurmdbd:slurmdbd \
	prometheus:prometheus prometheus-alertmanager:amtool prometheus-pushgateway:prometheus-pushgateway \
	victoria-metrics:vmalert prometheus-node-exporter:prometheus-node-exporter chromium:chromium \
	kubernetes-client:kubectl systemd:systemd-analyze openssl:openssl npm:npm \
	debootstrap:debootstrap buildah:buildah podman:podman runc:runc faketime:faketime
PYTEST_ARGS ?=
# Quote several pytest arguments: make test PYTEST_ARGS="tests/unit -x -q"

# The container image (Containerfile), built without any registry pull. The caches (the debootstrap
# root filesystem, the dependency wheels) live outside the repository, keyed by what they hold.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' hpcwatch/version.py)
IMAGE := localhost/hpcwatch:$(VERSION)
CACHE ?= $(or $(HPCWATCH_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hpcwatch)
DEBIAN_MIRROR ?= http://deb.debian.org/debian
# Debian 12 minbase with Python and the Slurm client commands the cluster agent runs.
BASE_PKGS := python3,python3-venv,ca-certificates,slurm-client
BASE_KEY := $(shell echo "bookworm $(BASE_PKGS) $(DEBIAN_MIRROR)" | sha256sum | cut -c1-12)
BASE_TAR := $(CACHE)/image/rootfs-bookworm-$(BASE_KEY).tar
BASE_IMAGE := localhost/hpcwatch-base:bookworm-$(BASE_KEY)
LOCK := deploy/container/requirements.lock
WHEELS := $(CACHE)/image/wheels-$(shell sha256sum $(LOCK) 2>/dev/null | cut -c1-12)
CONTEXT := build/image
# RUN steps in a chroot: no OCI runtime or cgroup setup needed (CI machines, containers, hybrid cgroups).
BUILDAH_ISOLATION ?= chroot

.PHONY: run test deps venv generate check-generated demo lint bench clean wheel image image-base image-lock image-name

run: venv generate
	$(BIN)/hpcwatch serve --agent node

# The whole suite runs in two lanes at once: the end-to-end scenarios and the image build spend their
# minutes waiting on daemons, clocks and downloads, not on the CPU, so they run beside the rest (their
# output, kept in .test-lane.log, follows the main lane's; the two wheel builds, which share the
# tree's build/ folder, stay in one lane). PYTEST_ARGS runs just what it names.
LANE := tests/e2e tests/integration/test_image.py tests/integration/test_wheel.py
test: deps venv
ifeq ($(strip $(PYTEST_ARGS)),)
	@PYTHONUNBUFFERED=1 $(BIN)/python -m pytest -p no:cacheprovider $(LANE) > .test-lane.log 2>&1 & lane=$$!; \
	PYTHONUNBUFFERED=1 $(BIN)/python -m pytest $(foreach t,$(LANE),--ignore=$(t)); rc=$$?; \
	wait $$lane; lrc=$$?; echo "== the second lane: $(LANE)"; cat .test-lane.log; \
	echo "== main lane exit $$rc, second lane exit $$lrc"; [ $$rc = 0 ] && [ $$lrc = 0 ]
else
	PYTHONUNBUFFERED=1 $(BIN)/python -m pytest $(PYTEST_ARGS)
endif

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

# --- the container image -----------------------------------------------------------------------------

image-name:
	@echo $(IMAGE)

wheel: venv
	rm -rf $(CONTEXT) && mkdir -p $(CONTEXT)/hpcwatch $(CONTEXT)/deps
	$(BIN)/pip wheel --no-deps --quiet -w $(CONTEXT)/hpcwatch .

# Debian 12 by debootstrap, once per package list (as root: debootstrap makes device nodes, chroots).
# The root folder is 0755 (mktemp's 0700 would stop package scripts run as other users, e.g. munge's).
$(BASE_TAR):
	@mkdir -p $(dir $@)
	root=$$(mktemp -d $(CACHE)/image/rootfs.XXXXXX) && chmod 0755 "$$root" && \
	trap 'umount -R "$$root"/proc "$$root"/sys "$$root"/dev 2>/dev/null; rm -rf --one-file-system "$$root"' EXIT && \
	{ debootstrap --variant=minbase --include=$(BASE_PKGS) bookworm "$$root" $(DEBIAN_MIRROR) >"$$root.log" 2>&1 || \
	  { tail -25 "$$root.log" "$$root/debootstrap/debootstrap.log" 2>/dev/null; rm -f "$$root.log"; exit 1; }; } && \
	rm -f "$$root.log" && \
	chroot "$$root" apt-get clean && \
	rm -rf "$$root"/var/lib/apt/lists/* "$$root"/usr/share/doc/* "$$root"/usr/share/man/* \
	    "$$root"/usr/share/locale/* && \
	tar --numeric-owner --one-file-system -C "$$root" -cf $@.tmp . && mv $@.tmp $@

image-base: $(BASE_TAR)
	podman image exists $(BASE_IMAGE) || podman import --quiet $(BASE_TAR) $(BASE_IMAGE) >/dev/null

# The dependency wheels of the lock file, each checked against its hash.
$(WHEELS)/.complete: $(LOCK) | venv
	$(BIN)/pip download --quiet --only-binary=:all: --no-deps --require-hashes -r $(LOCK) -d $(WHEELS)
	touch $@

image: wheel image-base $(WHEELS)/.complete
	cp $(LOCK) $(CONTEXT)/requirements.lock
	cp -l $(WHEELS)/*.whl $(CONTEXT)/deps/ 2>/dev/null || cp $(WHEELS)/*.whl $(CONTEXT)/deps/
	buildah build --pull=never --layers --quiet --isolation=$(BUILDAH_ISOLATION) --build-arg BASE=$(BASE_IMAGE) \
	    -f Containerfile \
	    -t $(IMAGE) $(CONTEXT) >/dev/null
	@podman image inspect --format '$(IMAGE): {{.Size}} bytes' $(IMAGE)

# Re-pin the image's Python dependencies (after changing them in pyproject.toml).
image-lock: wheel
	$(BIN)/python deploy/container/lock.py $(CONTEXT)/hpcwatch/hpcwatch-$(VERSION)-py3-none-any.whl > $(LOCK)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
