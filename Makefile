# `make test` is the one test command (README, .ci/run). It installs what it
# needs, runs the unit tests on the host and the kernel tests on a real ipvlan
# kernel: directly when this host has one, otherwise in a User-Mode Linux guest.
VENV   ?= .venv
PY     := $(VENV)/bin/python
APT_PKGS := user-mode-linux kmod iproute2 iputils-ping containernetworking-plugins \
            bird2 frr etcd-server etcd-client util-linux openssl

.PHONY: install deps test unit kernel lint clean bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	touch $@

# System packages the kernel tests need; installed only when missing.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(VENV)/bin/ruff check ipvnet tests scripts
	$(VENV)/bin/mypy ipvnet tests/unit/fake_engine.py

unit: install deps
	$(PY) -m pytest tests/unit tests/etcd -q

kernel: install deps
	$(PY) scripts/kernel_tests.py

test: install deps lint unit kernel

clean:
	rm -rf $(VENV) build *.egg-info

# Attach/detach timing on a real ipvlan kernel (UML guest when the host lacks one).
bench: install deps
	$(PY) scripts/kernel_tests.py --bench
