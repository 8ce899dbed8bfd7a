# The two commands of README.md: `make demo` and `make test`.
SHELL := /bin/bash
WASM := target/wasm32-unknown-unknown/release/batch_event_processor.wasm
DIST := pkg/dist
# Off PATH on purpose (see .ci/setup): pass it explicitly to whatever needs Firefox.
GECKODRIVER ?= $(HOME)/.cache/batch-event-processor/geckodriver/bin/geckodriver
# wasm-bindgen-cli at Cargo.lock's version, with .ci/setup's patched test-runner server
# (setup checks the version and the patch): first on PATH for `wasm-bindgen` and cargo's
# wasm32 runner `wasm-bindgen-test-runner`.
export WASM_BINDGEN_ROOT := $(HOME)/.cache/batch-event-processor/wasm-bindgen-cli
export PATH := $(WASM_BINDGEN_ROOT)/bin:$(PATH)
WASM_FEATURES := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
	--enable-reference-types --enable-multivalue --enable-mutable-globals

.PHONY: demo-node setup build test test-native test-wasm-node test-wasm-chromium test-node test-workerd test-browser \
	test-runtimes test-deno test-bun test-nextjs test-wasm-firefox test-wasm-webkit test-engines lint demo bench

setup:
	@bash .ci/setup

## build: the npm package in pkg/ (wasm-bindgen output in pkg/dist, CJS entry pkg/node.cjs)
build:
	cargo build --release --target wasm32-unknown-unknown --lib
	rm -rf target/dist-new
	wasm-bindgen --target web --out-dir target/dist-new --out-name bep $(WASM)
	npx wasm-opt -Oz --strip-debug --strip-producers $(WASM_FEATURES) target/dist-new/bep_bg.wasm -o target/dist-new/bep_bg.wasm
	@# Short names for the wasm's imports from bep.js and its exports (hashed names do not compress).
	node .ci/short-names.mjs target/dist-new
	@# Cut wasm-bindgen's URL/Response loading (pkg/loader.js loads the wasm) and its duplicate imports.
	node .ci/trim-glue.mjs target/dist-new
	@# dist/glue/<name>.js re-exports the glue module src/wasm/js/<name>.js from its
	@# wasm-bindgen copy (dist/snippets/<crate>-<hash>/...), so that pkg/ code imports
	@# the one copy bep.js uses by a path without the hash.
	@# A module no Rust code imports is not copied: that fails here, not in a bundler.
	mkdir -p target/dist-new/glue; for m in src/wasm/js/*.js; do \
		f=$$(echo target/dist-new/snippets/*/$$m); test -f "$$f" || { echo "$$m: not imported by any Rust code"; exit 1; }; \
		printf "export * from '../%s';\n" "$${f#target/dist-new/}" > target/dist-new/glue/$$(basename $$m); done
	@# Swap the new output in at once, so a concurrent test never sees pkg/dist missing.
	rm -rf target/dist-old; if [ -d $(DIST) ]; then mv $(DIST) target/dist-old; fi; mv target/dist-new $(DIST)
	npx esbuild pkg/node.js --bundle --platform=node --format=cjs --log-level=warning \
		--outfile=pkg/node.cjs --define:import.meta.url=import_meta_url \
		--banner:js="const import_meta_url = require('node:url').pathToFileURL(__filename).href;"
	@printf 'wasm: %s bytes, gzip %s bytes\n' "$$(wc -c < $(DIST)/bep_bg.wasm)" "$$(gzip -9c $(DIST)/bep_bg.wasm | wc -c)"

## test: everything, from a fresh machine
test: setup lint build test-native test-wasm-node test-wasm-chromium test-wasm-firefox test-wasm-webkit \
	test-node test-workerd test-browser test-runtimes test-nextjs test-engines

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --all-targets -- -D warnings

test-native:
	cargo test

test-wasm-node:
	cargo test --target wasm32-unknown-unknown

# The runner prefers GECKODRIVER over SAFARIDRIVER over CHROMEDRIVER (and a geckodriver
# on PATH over chromedriver): each browser run names its driver and unsets the others.
test-wasm-chromium:
	env -u GECKODRIVER -u SAFARIDRIVER WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver \
		cargo test --target wasm32-unknown-unknown

test-wasm-firefox:
	env -u CHROMEDRIVER -u SAFARIDRIVER WASM_BINDGEN_USE_BROWSER=1 GECKODRIVER=$(GECKODRIVER) \
		cargo test --target wasm32-unknown-unknown

# WebKitGTK's MiniBrowser needs a display: a private Xvfb through xvfb-run.
test-wasm-webkit:
	env -u CHROMEDRIVER -u GECKODRIVER WASM_BINDGEN_USE_BROWSER=1 SAFARIDRIVER=/usr/bin/WebKitWebDriver \
		xvfb-run -a cargo test --target wasm32-unknown-unknown

test-node:
	node tests/support/install-package.mjs
	node --test --test-concurrency=1 tests/node/

test-workerd:
	node tests/support/install-package.mjs
	node --test tests/workerd/

test-browser:
	node tests/support/install-package.mjs
	node --test tests/browser/

## test-engines: the browser scenarios in Chromium, Firefox ESR and WebKitGTK through WebDriver
## (tests/engines/, tests/support/webdriver.mjs), one engine at a time
test-engines:
	node tests/support/install-package.mjs
	GECKODRIVER=$(GECKODRIVER) node --test --test-concurrency=1 tests/engines/

## test-runtimes: the shared server-side subset (tests/runtimes/cases.mjs) in Node, Deno and Bun
## (both from npm, devDependencies), each against its own collector on 127.0.0.1
test-runtimes:
	node tests/support/install-package.mjs
	node --test tests/runtimes/node.test.mjs
	$(DENO_TEST)
	$(BUN_TEST)

# Deno resolves the package from the consumer project's node_modules, as a Deno user would.
DENO_TEST := cd target/consumer && DENO_NO_UPDATE_CHECK=1 ../../node_modules/.bin/deno test --allow-all \
	--no-check --node-modules-dir=manual ../../tests/runtimes/deno.test.mjs
BUN_TEST := DO_NOT_TRACK=1 node_modules/.bin/bun test ./tests/runtimes/bun.test.mjs

test-deno:
	node tests/support/install-package.mjs
	$(DENO_TEST)

test-bun:
	node tests/support/install-package.mjs
	$(BUN_TEST)

## test-nextjs: www/nextjs built with `next build` and served by `next start` on 127.0.0.1; its edge
## middleware (the package's `edge-light` entry) sends an event per request to a collector
test-nextjs:
	node tests/support/install-package.mjs
	NEXT_TELEMETRY_DISABLED=1 node --test tests/nextjs/

## demo: builds the package and serves the live demo (www/) with a local collector
demo: setup build
	node www/server.mjs

## demo-node: the same batching from a Node script, printing what the collector gets
demo-node: build
	node www/demo-node.mjs
