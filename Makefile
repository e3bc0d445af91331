# kata-ts build, test and benchmark entry points. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

NAPI_CRATE := kata-ts-napi
NAPI_OUT := build/napi
NODE_BIN := kata-ts.linux-x64-gnu.node
APT_PACKAGES := protobuf-compiler libprotobuf-dev systemd dbus-daemon gcc util-linux qemu-system-x86 qemu-utils busybox-static cpio xz-utils rsync e2fsprogs file containerd runc linux-source-6.1 make bc flex bison libelf-dev libssl-dev
NPM_STAMP := node_modules/.kata-ts-npm-stamp
# The stamp names the package list, so adding a package installs it on the next run.
APT_STAMP := build/.apt-stamp-$(shell echo '$(APT_PACKAGES)' | md5sum | cut -c1-8)

.PHONY: build native agent guest kernel kata-agent ts proto deps apt npm test check bench fuzz demo pack types clean

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
# The host-wide shim's front (crates/shim-front: holds containerd's connections, restarts the
# node daemon) is built here too; `start` finds it in target/ or, packed, in the platform package.
agent: apt
	cargo build --release --target x86_64-unknown-linux-gnu -p kata-ts-agent -p shim-front

# The guests (ts/guest/build-guest.sh, cached in build/guest; README "Guest images"):
#   vmlinux-debian  Debian's kernel (apt-get download, never installed on the host): the peer;
#   vmlinux-minimal the minimal kernel (make kernel), the default: vmlinux links to GUEST_KERNEL's
#                   (minimal; Debian's when the minimal kernel could not be built);
#   initramfs.cpio.gz with our agent as PID 1, initramfs-kata.cpio.gz with upstream kata-agent
#   and our serial relay (make kata-agent); plus a busybox ext4 container rootfs in build/rootfs.
# The minimal kernel and kata-agent are built once per machine into a cache outside the clone
# (KATA_TS_CACHE, default /var/cache/kata-ts) from ../shared (read-only); without ../shared they
# are skipped loudly (exit 3) and the guest keeps the Debian kernel and our agent only.
# Our agent and the relay are linked statically (the initramfs has no libc), in their own target
# dir so these RUSTFLAGS do not rebuild the host's agent and addon.
AGENT_STATIC_DIR := target/guest-static
AGENT_STATIC_BIN := $(AGENT_STATIC_DIR)/x86_64-unknown-linux-gnu/release/kata-ts-agent
RELAY_STATIC_BIN := $(AGENT_STATIC_DIR)/x86_64-unknown-linux-gnu/release/kata-ts-serial-relay
GUEST_KERNEL ?= minimal
KERNEL_OUT := build/kernel
guest: apt kernel kata-agent
	RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=$(AGENT_STATIC_DIR) cargo build --release --target x86_64-unknown-linux-gnu -p kata-ts-agent -p serial-relay
	minimal=$$(bash scripts/build-kernel.sh --print-path || true); kata=$$(bash scripts/build-kata-agent.sh --print-path || true); \
	  MINIMAL_KERNEL=$$minimal KATA_AGENT=$$kata SERIAL_RELAY=$${kata:+$(RELAY_STATIC_BIN)} GUEST_KERNEL=$(GUEST_KERNEL) \
	  bash ts/guest/build-guest.sh build/guest $(AGENT_STATIC_BIN)
	bash scripts/build-rootfs-image.sh build/rootfs

# The minimal guest kernel: Debian's linux-source-6.1 with Kata's config fragments, built in,
# an uncompressed PVH vmlinux, the guests' default kernel (every guest suite passes on it with both
# agents). Cached in KATA_TS_CACHE keyed by its inputs (a fresh build is ~110 min on 2 cores);
# scripts/build-kernel.sh exit 3: no ../shared, skipped; exit 4: another build is running — the
# guest is then built with Debian's kernel as the default this time.
kernel: apt
	nice -n 10 bash scripts/build-kernel.sh --no-wait $(KERNEL_OUT) >/dev/null || { rc=$$?; [ $$rc = 3 ] || [ $$rc = 4 ]; }

# Upstream kata-agent (the test peer), static, with init-data (scripts/build-kata-agent.sh).
kata-agent: apt
	nice -n 10 bash scripts/build-kata-agent.sh --no-wait >/dev/null || { rc=$$?; [ $$rc = 3 ] || [ $$rc = 4 ]; }

types: native
	cp $(NAPI_OUT)/index.d.ts $(NAPI_OUT)/index.js .

# TypeScript protobuf code (committed; __test__/proto/generated-proto.spec.ts checks it is current).
PROTOC_ES = protoc -I proto -I /usr/include --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es --es_opt=target=ts,import_extension=js
proto: apt npm
	rm -rf ts/gen && mkdir -p ts/gen
	$(PROTOC_ES) --es_out=ts/gen $$(find proto -name '*.proto' | sort)

ts: npm
	rm -rf dist
	npx tsc -p tsconfig.build.json

build: deps native agent ts

# The README's test command. Ends with the line `N passed, N failed, N skipped` (checks on their
# own lines, not counted); CI=true also fails when a promised suite was skipped (scripts/run-tests.sh).
test: build guest
	bash scripts/run-tests.sh

bench: build guest
	npx tsx bench/run.ts

# libFuzzer targets in fuzz/ (cargo-fuzz, installed when missing), FUZZ_SECONDS per target
# (default 20); merges fuzz.<target> figures into bench/results.json, fails on any crash.
fuzz:
	bash scripts/fuzz.sh

# The main job: a busybox container in a sandbox VM (block rootfs, live-synced configmap, shm,
# cgroups), then a timing table. See examples/demo/run-demo.sh. GUEST=kata boots upstream
# kata-agent's image, CONFIG=stock Kata's stock runtime-rs configuration (only paths changed).
demo: build guest
	DEMO_GUEST='$(GUEST)' DEMO_CONFIG='$(CONFIG)' bash examples/demo/run-demo.sh

# Kubernetes CRI validation (critest v1.37.0) through containerd 1.6's CRI, runc then kata-ts
# (root; README "Kubernetes"). The harness is the shared one (CRITEST_HARNESS); results and the
# spec x handler table (compare.md, printed at the end) go to OUT. `conformance` runs the whole
# suite (kata-ts 25-40 min on 2 cores under TCG); `conformance-ci` a focused subset that fits CI:
# pod/container lifecycle, exec/attach/tty, stats, OOM (the host-namespace specs are refused by design).
CRITEST_HARNESS ?= ../shared/conformance/critest
CONFORMANCE_OUT ?= build/conformance
CONFORMANCE_CI_FOCUS := basic operations on PodSandbox|should support creating container \[|should support starting container|should support removing running container|should support execSync \[|listing container stats|exec with tty=true|should support attach|OOMKilled|multiple containers in a pod should support container exec
.PHONY: conformance conformance-ci
conformance: build guest
	OUT=$(CURDIR)/$(CONFORMANCE_OUT)/full bash $(CRITEST_HARNESS)/run.sh $(CURDIR) runc kata-ts
conformance-ci: build guest
	OUT=$(CURDIR)/$(CONFORMANCE_OUT)/ci FOCUS='$(CONFORMANCE_CI_FOCUS)' bash $(CRITEST_HARNESS)/run.sh $(CURDIR) runc kata-ts

# Main package + linux-x64-gnu platform package (prebuilt .node) as tarballs in build/pack.
pack: build
	bash scripts/pack.sh build/pack

clean:
	rm -rf build dist target $(NODE_BIN)
