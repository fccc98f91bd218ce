# Rolecall: `make deps` once, then `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BUILD   := $(CURDIR)/build
VENV    := $(BUILD)/venv
STAMP   := $(BUILD)/.deps-$(shell cat tests/requirements.txt .ci/apt-packages | sha1sum | cut -c1-12)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO   ?= cargo
# drives the tray app's windows in the tests (tests/support/webdriver.rs); WebKitWebDriver is apt's
TAURI_DRIVER := $(BUILD)/tools/.tauri-driver-2.1.0
export ROLECALL_VENV := $(VENV)

.PHONY: help deps deps-windows build test test-windows lint bench demo run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

deps: $(STAMP) $(TAURI_DRIVER) ## install Debian packages and the test tools (idempotent)

$(STAMP): tests/requirements.txt .ci/apt-packages
	@missing=$$(for p in $$(cat .ci/apt-packages); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	@rm -f $(BUILD)/.deps-*; touch $@

$(TAURI_DRIVER):
	$(CARGO) install tauri-driver --locked --version 2.1.0 --root $(BUILD)/tools
	@touch $@

deps-windows: ## the cross toolchain and Wine for test-windows (Debian packages)
	@missing=$$(for p in $$(cat .ci/apt-packages-windows); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build: ## build the rolecall binary and the tray app, rolecall-app (debug)
	$(CARGO) build --workspace --bins

# property tests explore from one fixed seed under `make test`, so a run is reproducible (a
# failure is the code's, not the dice's); `cargo test` alone explores from a new seed each time
test: export PROPTEST_RNG_SEED ?= 20261127
test: deps ## everything CI runs: format, lints, unit and integration tests
	$(CARGO) fmt --all --check
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --workspace --all-targets --locked

test-windows: deps deps-windows ## the engine's tests built for Windows and run under Wine (CI runs it)
	@bash tests/windows/run.sh

bench: deps ## print the benchmark tables (the daemon ones take ~2 min)
	$(CARGO) build --release --bins --locked
	@# --profile release (what the bench profile inherits, unchanged): shares the dependencies
	@# just built for the binary instead of compiling the AWS stack a second time
	$(CARGO) bench --bench splice --profile release --locked
	@# The daemon bench times the release binary (ROLECALL_BIN); the harness itself only starts
	@# processes and reads /proc, so it builds in the dev profile and reuses `make test`'s build
	@# instead of a release (LTO) build of the whole test bed.
	@# the peer of the credential_process table, in a venv of its own (it pins its own awscli)
	@test -x build/bench-venv/bin/bastion || { python3 -m venv build/bench-venv && \
	  build/bench-venv/bin/pip install --quiet awscli-bastion==0.9.6; }
	ROLECALL_BIN=$(CURDIR)/target/release/rolecall BASTION_BIN=$(CURDIR)/build/bench-venv/bin/bastion \
	  $(CARGO) bench --workspace --bench daemon --profile dev --locked

demo: deps build ## a throwaway HOME, a local STS, a demo key with MFA and three roles
	@bash installers/demo.sh

run: deps build ## the tray app in your panel on the demo set-up (throwaway HOME, local STS, private keychain)
	@bash installers/demo.sh --app

# not in `make test`: needs Debian's xfce4-panel and xdotool too (installers/screenshots.sh)
.PHONY: screenshots
screenshots: deps build ## docs/screenshots/tray-*.png from the real app on the demo, under Xvfb
	@bash installers/screenshots.sh

clean:
	rm -rf $(BUILD) target
