# make test / make run / make bench / make lint / make wheel — each sets itself up from a fresh clone.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
SRC := $(shell find rust -name '*.rs' -o -name Cargo.toml) Cargo.toml Cargo.lock pyproject.toml
export CARGO_TERM_COLOR ?= never

.PHONY: test test-rust test-python soak run bench lint fmt develop develop-release wheel clean mutants \
	mutants-py

$(PY):
	python3 -m venv $(VENV)

# websockets: not used by kline_rs any more, only the peer in benchmarks/bench_ws_client.py.
# plotly: the chart page's JavaScript (the serve extra). Chromium for the chart test is a
# Debian package: tests/devtools.py installs it with apt-get where root may, else it skips.
# nats-py: kline-rs capture (the nats extra); Debian's nats-server for its tests is installed
# the same way by tests/nats_cluster.py.
$(DEPS): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.7,<2" "numpy>=1.24" "websockets>=13" "aiohttp>=3.11" \
		"pytest>=8" "hypothesis>=6" "ruff>=0.6" "mypy>=1.11" "psycopg[binary]>=3.1" "pyarrow>=14" \
		"polars>=1.0" "pandas>=2.2" "ccxt>=4" "python-binance>=1.0.19" "binance-sdk-spot>=13" \
		"plotly>=5" "nats-py>=2.6"
	touch $@

# Dev build of the extension into the venv (kline_rs._core).
# The extension is abi3 (_core.abi3.so); a per-version _core.cpython-*.so left by an older
# build would be imported before it, so it goes first.
$(VENV)/.built-dev: $(DEPS) $(SRC)
	rm -f python/kline_rs/_core.cpython-*.so
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop -q
	rm -f $(VENV)/.built-release
	touch $@

$(VENV)/.built-release: $(DEPS) $(SRC)
	rm -f python/kline_rs/_core.cpython-*.so
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop -q --release
	rm -f $(VENV)/.built-dev
	touch $@

develop: $(VENV)/.built-dev
develop-release: $(VENV)/.built-release

test: test-rust test-python

test-rust:
	cargo test -p kline_core --quiet
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p kline_core --quiet --no-default-features --test loom_doorbell

test-python: develop
	$(PY) -m pytest -q

# The restart test and the scale-out cluster test with many more SIGKILLs (20 and 21 in
# `make test`).
soak: develop
	KLINE_RS_KILLS=200 $(PY) -m pytest -q tests/test_restart.py
	KLINE_RS_CLUSTER_KILLS=120 $(PY) -m pytest -q -s tests/test_scale_cluster.py

# Mutation testing of the exactness-critical Rust modules with cargo-mutants (about 1 400
# mutants, hours on 2 cores: not part of `make test`). `make mutants MUTATE="kline rollup"`
# runs a subset, `SHARD=1/4` a quarter of it; the survivors are in
# $(MUTANTS_OUT)/mutants.out/missed.txt (see TESTING.md). A module split into a folder of the
# same name (engine/partition.rs and engine/partition/, aggregate/) takes the folder's files
# too, new ones included, but not its tests.rs.
MUTATE ?= decimal interval kline plausible aggregate rollup output engine/table engine/partition \
	parse/digits replay/run
MUTANTS_OUT ?= target/mutants
mutate_files = $(foreach m,$(MUTATE),-f rust/kline_core/src/$(m).rs \
	$(foreach f,$(filter-out %/tests.rs,$(wildcard rust/kline_core/src/$(m)/*.rs)),-f $(f)))
mutants:
	test -x .tools/bin/cargo-mutants || cargo install --locked cargo-mutants --root .tools
	KLINE_RS_DATA=$(abspath ../shared/data) \
		.tools/bin/cargo-mutants mutants -p kline_core --test-workspace false -j 1 \
		$(mutate_files) $(if $(SHARD),--shard $(SHARD)) \
		-o $(MUTANTS_OUT)

# mutmut over the Python storage rules (storage/base.py, live/persist.py; config in pyproject).
# mutmut only knows the src/ layout: it runs in a copy of the repo where python/ is src/.
mutants-py: develop
	$(PY) -m pip install -q "mutmut>=3.8,<4"
	rm -rf target/mutmut && mkdir -p target/mutmut
	cp -r python target/mutmut/src && cp -r tests pyproject.toml target/mutmut/
	cd target/mutmut && KLINE_RS_DATA=$(abspath ../shared/data) $(abspath $(VENV))/bin/mutmut run
	cd target/mutmut && $(abspath $(VENV))/bin/mutmut results

run: develop-release
	$(VENV)/bin/kline-rs demo --duration 20

bench: develop-release
	$(PY) -m pip install -q "polars>=1.0" "orjson>=3"
	$(PY) benchmarks/bench_goals.py   # every goal of issue 14 (runs bench_replay_reference.py)
	$(PY) benchmarks/bench_replay.py
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_storage.py
	$(PY) benchmarks/bench_serve.py
	cargo bench -p kline_core --bench latency
	cargo bench -p kline_core --bench rollover

lint: $(DEPS)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(PY) -m ruff check python tests benchmarks examples
	$(PY) -m ruff format --check python tests benchmarks examples
	$(MAKE) develop
	$(PY) -m mypy
	$(PY) -m mypy.stubtest kline_rs._core

fmt: $(DEPS)
	cargo fmt --all
	$(PY) -m ruff format python tests benchmarks examples
	$(PY) -m ruff check --fix python tests benchmarks examples

# The abi3 (CPython >= 3.10) wheel and the sdist, into dist/. The tag is the glibc the build
# links against: Debian 12 (glibc 2.36) gives manylinux_2_34 (pthread_* and dlsym moved into
# libc at 2.34); maturin's audit refuses a lower tag without zig or a manylinux container.
MANYLINUX ?= manylinux_2_34
wheel: $(DEPS)
	rm -rf dist
	$(VENV)/bin/maturin build --release --compatibility $(MANYLINUX) --out dist
	$(VENV)/bin/maturin sdist --out dist
	@for f in dist/*; do echo "$$f: $$(stat -c %s $$f | awk '{printf "%.1f MB", $$1 / 1e6}')"; done
	@w=$$(ls dist/*.whl); w=$${w%.whl}; echo "wheel tag: $${w#dist/kline_rs-*-}"

clean:
	rm -rf $(VENV) target dist
