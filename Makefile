# Agent Assembly — `make demo` runs the demo, `make test` runs every test (set-up included).
.PHONY: demo test setup bench fmt

demo:
	scripts/demo.sh

test:
	scripts/test.sh

setup:
	scripts/setup.sh

bench:
	scripts/bench.sh

fmt:
	cargo fmt --all
