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
# bundles the .deb and .rpm (`make package`)
TAURI_CLI := $(BUILD)/tools/.tauri-cli-2.11.5
export ROLECALL_VENV := $(VENV)

# The one release build: what `make package` ships and `make bench` measures. tauri/custom-protocol
# is what `cargo tauri build` adds (the app serves its pages from inside its binary); the remaps
# keep this machine's paths out of the binaries (panic locations name source files). The profile
# strips symbols and debug info (Cargo.toml).
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
RELEASE_ENV := RUSTFLAGS="--remap-path-prefix=$(CURDIR)=/rolecall --remap-path-prefix=$(CARGO_HOME_DIR)=/cargo"
RELEASE_BUILD := $(RELEASE_ENV) $(CARGO) build --release --bins --locked --features tauri/custom-protocol
# what the packages take from the CLI itself: man pages, completions, the unit (package.json)
PKG_FILES := $(BUILD)/package

.PHONY: help deps deps-windows build test test-windows test-package lint bench package demo run clean

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

$(TAURI_CLI):
	$(CARGO) install tauri-cli --locked --version 2.11.5 --root $(BUILD)/tools
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
	@$(MAKE) --no-print-directory test-package

# `cargo tauri bundle` (not `build`): it packages the release just built instead of building
# the app again on its own (its cargo call selects only the app, so shared crates would get other
# features and be compiled twice); the CLI, man pages, completions and unit come in through
# installers/linux/tauri.package.json, which `cargo tauri bundle` merges into tauri.conf.json
package: $(TAURI_CLI) ## the .deb and .rpm (target/release/bundle/), from one release build
	$(RELEASE_BUILD)
	@rm -rf $(PKG_FILES) target/release/bundle/deb target/release/bundle/rpm
	@mkdir -p $(PKG_FILES)/completions
	target/release/rolecall man $(PKG_FILES)/man1
	gzip -9n $(PKG_FILES)/man1/*.1
	target/release/rolecall completions bash >$(PKG_FILES)/completions/rolecall.bash
	@# zsh autoloads _rolecall from its fpath at the first Tab and runs it: clap's script only
	@# registers its function then, so it is also called, or that first Tab completes nothing
	{ target/release/rolecall completions zsh; \
	  echo '[[ $${funcstack[1]} == _rolecall ]] && _clap_dynamic_completer_rolecall "$$@"'; } \
	  >$(PKG_FILES)/completions/_rolecall
	target/release/rolecall completions fish >$(PKG_FILES)/completions/rolecall.fish
	target/release/rolecall daemon --install-unit --unit-dir $(PKG_FILES) --unit-exec /usr/bin/rolecall >/dev/null
	PATH=$(BUILD)/tools/bin:$$PATH $(CARGO) tauri bundle --ci --bundles deb,rpm \
	  --config installers/linux/tauri.package.json
	@# the bundler compresses the .deb with gzip: xz, which every dpkg since Debian 6 reads,
	@# makes it about 30% smaller (8.5 MB to 6 MB)
	deb=$$(ls target/release/bundle/deb/*.deb) && rm -rf $(PKG_FILES)/deb && \
	  dpkg-deb -R "$$deb" $(PKG_FILES)/deb && \
	  dpkg-deb --root-owner-group -Zxz -b $(PKG_FILES)/deb "$$deb" >/dev/null
	@ls -l target/release/bundle/deb/*.deb target/release/bundle/rpm/*.rpm

# installs the .deb on this machine (root; apt-get under flock /tmp/rolecall-apt.lock) and
# removes it again: see installers/test-deb.sh
test-package: deps package ## install the .deb for real and exercise it; check the .rpm
	@bash installers/test-deb.sh

test-windows: deps deps-windows ## the engine's tests built for Windows and run under Wine (CI runs it)
	@bash tests/windows/run.sh

bench: deps package ## print the benchmark tables (the daemon ones take ~2 min)
	@echo "sizes (release, stripped; packages from make package):"
	@for f in target/release/rolecall target/release/rolecall-app target/release/bundle/deb/*.deb \
	  target/release/bundle/rpm/*.rpm; do \
	  stat -c '%s %n' "$$f" | awk '{printf "  %-58s %5.1f MiB\n", $$2, $$1 / 1048576}'; \
	done
	@# --profile release (what the bench profile inherits, unchanged): shares the dependencies
	@# just built for the binary instead of compiling the AWS stack a second time
	$(RELEASE_ENV) $(CARGO) bench --bench splice --profile release --locked
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
