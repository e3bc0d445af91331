# kata-ts build, test and benchmark entry points. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

NAPI_CRATE := kata-ts-napi
NAPI_OUT := build/napi
NODE_BIN := kata-ts.linux-x64-gnu.node
APT_PACKAGES := protobuf-compiler libprotobuf-dev systemd dbus-daemon gcc util-linux qemu-system-x86 qemu-utils busybox-static cpio xz-utils rsync
NPM_STAMP := node_modules/.kata-ts-npm-stamp
APT_STAMP := build/.apt-stamp

.PHONY: build native agent guest ts proto deps apt npm test check bench demo pack types clean

deps: apt npm

# apt: only what is missing, once per machine (apt-get update needs network to Debian's mirror).
apt: $(APT_STAMP)
$(APT_STAMP):
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  sudo_cmd=""; [ "$$(id -u)" = 0 ] || sudo_cmd=sudo; \
	  $$sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo_cmd apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(dir $@) && touch $@

npm: $(NPM_STAMP)
$(NPM_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

# The native addon: napi writes the .node, the JS loader and index.d.ts into build/napi; the
# committed index.js / index.d.ts are checked against them by __test__/native/generated-types.spec.ts
# (run `make types` after changing an export to refresh the committed copies).
native: apt npm
	npx napi build --platform --release -p $(NAPI_CRATE) --esm --output-dir $(NAPI_OUT)
	cp $(NAPI_OUT)/$(NODE_BIN) ./$(NODE_BIN)

# The guest agent (ttrpc server; build.rs runs ttrpc-codegen on proto/ with protoc from apt).
AGENT_BIN := target/x86_64-unknown-linux-gnu/release/kata-ts-agent
agent: apt
	cargo build --release --target x86_64-unknown-linux-gnu -p kata-ts-agent

# Test guest for __test__/qemu/guest.spec.ts and the boot benchmark: a Debian kernel and its virtio
# modules (apt-get download, never installed on the host) and a busybox initramfs, cached in build/guest.
guest: apt
	bash ts/guest/build-guest.sh build/guest

types: native
	cp $(NAPI_OUT)/index.d.ts $(NAPI_OUT)/index.js .

# TypeScript protobuf code (committed; __test__/proto/generated-proto.spec.ts checks it is current).
PROTOC_ES = protoc -I proto -I /usr/include --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es --es_opt=target=ts,import_extension=js
proto: apt npm
	rm -rf ts/gen && mkdir -p ts/gen
	$(PROTOC_ES) --es_out=ts/gen proto/*.proto

ts: npm
	rm -rf dist
	npx tsc -p tsconfig.build.json

build: deps native agent ts

# The README's test command. Prints a final `N passed, N failed` line.
test: build guest
	bash scripts/run-tests.sh

bench: build guest
	npx tsx bench/run.ts

# The main job on the bundled example (until the sandbox runs VMs: the planner).
demo: build
	node bin/kata-ts.js plan --config examples/configuration-qemu.toml --sandbox example-sandbox=examples/bundle --container example-app=examples/container-bundle

# Main package + linux-x64-gnu platform package (prebuilt .node) as tarballs in build/pack.
pack: build
	bash scripts/pack.sh build/pack

clean:
	rm -rf build dist target $(NODE_BIN)
