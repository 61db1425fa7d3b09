# moonport: `make run` brings the platform up locally, `make test` runs every test.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_BENCH ?= build-bench
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
MAKEFLAGS  += --no-print-directory

.PHONY: all build deps run stop test test-cluster chaos test-asan bench fuzz format format-check clean

all: build

deps:
	@infra/local/deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

# Installs missing Debian packages, builds, starts NATS/Postgres/Redis under .run/,
# seeds demo accounts, and runs moonport in the foreground (Ctrl-C stops everything).
# CLUSTER=1: a 3-node NATS cluster and two processes of every role (docs/running-locally.md).
run: deps build
	@python3 infra/local/run.py --build $(BUILD) $(if $(filter 1,$(CLUSTER)),--cluster)

stop:
	@python3 infra/local/run.py --stop

# Unit, integration (real servers on free ports) and black-box HTTP tests.
test: deps build
	@python3 tests/harness/run_tests.py --build $(BUILD)

# Replicas of every role on a 3-node NATS cluster, under load, with a node killed (tests/cluster/; about a minute).
test-cluster: deps build
	@python3 tests/harness/run_tests.py --build $(BUILD) --only cluster

# Faults under load on the same cluster, one at a time (tests/chaos/): NATS node stopped and killed, service replica,
# gateway, Postgres restart, Redis down, rolling restart. CHAOS_SECONDS=10: an outage's length (CI: 4);
# CHAOS_WRITE_DOCS=1 writes the table into docs/reliability.md.
chaos: deps build
	@python3 tests/harness/run_tests.py --build $(BUILD) --only chaos

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer, warnings as errors.
test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DMP_SANITIZE=ON -DMP_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	python3 tests/harness/run_tests.py --build $(BUILD_ASAN)

# Its own optimised build (-O2 -g), whatever $(BUILD) was configured as: a Debug build measures -O0, not the code.
bench: deps
	cmake -S . -B $(BUILD_BENCH) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMP_SANITIZE=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_BENCH) -j $(JOBS)
	@python3 bench/run.py --build $(BUILD_BENCH)

fuzz: deps
	@tests/fuzz/run.sh $(or $(FUZZ_SECONDS),30)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_BENCH)
