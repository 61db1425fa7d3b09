#!/usr/bin/env bash
# tests/fuzz/run.sh [seconds [name...]]: builds every tests/fuzz/fuzz_<name>.c
# (or only the named ones) with clang's libFuzzer, ASan and UBSan into
# build-fuzz/, and runs each for `seconds` (default 30). Seeds come from
# tests/fuzz/corpus/<name>/ when it exists; inputs the fuzzer discovers go to
# build-fuzz/corpus/<name>/ (never into the checked-in seeds), crashes to
# build-fuzz/artifacts/. Exits 1 when any target fails to build or finds a
# crash, leak, timeout or broken property. Needs clang and the -dev packages
# of jansson, libyaml and OpenSSL (and, for the BFF, NATS and validation
# targets, LuaJIT, libh2o, libuv and nats.c); no CMake configuration is
# involved.
set -u

secs=${1:-30}
shift $(($# > 0 ? 1 : 0))
only=("$@")
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build-fuzz"
cc=${CC:-clang}

# The sources each target links, besides itself. A new fuzz_<name>.c needs a line here.
declare -A srcs=(
    [jwt]="core/jwt.c core/b64url.c core/alloc.c core/status.c"
    [json]="core/json.c core/buf.c core/alloc.c core/status.c"
    [route]="services/gateway/routes.c core/yaml.c core/buf.c core/alloc.c core/status.c"
    [yaml_cfg]="core/yaml.c core/cfg.c core/buf.c core/alloc.c core/status.c"
    [bff_json]="bff/json.c bff/view.c core/buf.c core/alloc.c core/status.c"
    [bff_pattern]="bff/pattern.c"
    # stub_service.c stands in for the service layer core/input.c replies through
    [bff_route]="bff/routes.c core/url.c core/input.c core/problem.c core/buf.c core/alloc.c core/status.c
                 tests/fuzz/stub_service.c"
    # natsio.c is #included by its target (to reach the static parser)
    [natsio]="core/bus.c core/nats_url.c core/log.c core/reqctx.c core/buf.c core/alloc.c core/status.c"
    [validate]="services/gateway/routes.c services/gateway/openapi.c services/gateway/params.c
                services/gateway/schema.c services/gateway/pattern.c core/yaml.c core/json.c core/input.c
                core/problem.c core/url.c core/buf.c core/alloc.c core/status.c tests/fuzz/stub_service.c"
)
declare -A incs=(
    [route]="-I$root/services/gateway"
    [bff_json]="-I$root/bff -I$root/bff/include"
    [bff_pattern]="-I$root -I$root/bff -I$root/bff/include"
    [bff_route]="-I$root/bff -I$root/bff/include"
    [validate]="-I$root -I$root/services/gateway"
)
# pkg-config packages every target links, and the extra ones some need
pkgs=(jansson yaml-0.1 libcrypto)
declare -A extra_pkgs=(
    [bff_json]="luajit libh2o libuv"
    [bff_pattern]="luajit libh2o libuv"
    [bff_route]="luajit libh2o libuv libnats"
    [natsio]="libh2o libuv libssl libnats"
    [validate]="libh2o libuv libnats"
)

if ! command -v "$cc" >/dev/null; then
    echo "run.sh: $cc not found (apt-get install clang)" >&2
    exit 1
fi
if ! pkg-config --exists "${pkgs[@]}"; then
    echo "run.sh: missing development packages for: ${pkgs[*]}" >&2
    exit 1
fi
flags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
mkdir -p "$out/artifacts"

failed=()
summary=()
for name in "${only[@]}"; do # a misspelt name would otherwise select nothing and pass
    if [[ ! -f "$root/tests/fuzz/fuzz_$name.c" ]]; then
        echo "run.sh: no target tests/fuzz/fuzz_$name.c" >&2
        failed+=("$name (no such target)")
    fi
done
for target in "$root"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$target" .c)
    name=${name#fuzz_}
    if [[ ${#only[@]} -gt 0 && " ${only[*]} " != *" $name "* ]]; then
        continue
    fi
    if [[ -z "${srcs[$name]+set}" ]]; then
        echo "run.sh: no source list for fuzz_$name in tests/fuzz/run.sh" >&2
        failed+=("$name (no source list)")
        continue
    fi
    # shellcheck disable=SC2206 # a word list
    tpkgs=("${pkgs[@]}" ${extra_pkgs[$name]:-})
    if ! libs=$(pkg-config --libs "${tpkgs[@]}") || ! pkgcflags=$(pkg-config --cflags "${tpkgs[@]}"); then
        echo "run.sh: missing development packages for fuzz_$name: ${tpkgs[*]}" >&2
        failed+=("$name (packages)")
        continue
    fi
    bin="$out/fuzz_$name"
    sources=()
    for s in ${srcs[$name]}; do
        sources+=("$root/$s")
    done
    echo "== building fuzz_$name"
    # shellcheck disable=SC2086 # flags and libraries are word lists
    if ! $cc $flags $pkgcflags -I"$root/core/include" ${incs[$name]:-} -o "$bin" "$target" "${sources[@]}" $libs \
        -lm -lpthread; then
        failed+=("$name (build)")
        continue
    fi

    corpus="$out/corpus/$name"
    mkdir -p "$corpus"
    seeds=()
    if [[ -d "$root/tests/fuzz/corpus/$name" ]]; then
        seeds=("$root/tests/fuzz/corpus/$name")
    fi
    log="$out/fuzz_$name.log"
    echo "== running fuzz_$name for ${secs}s (log: $log)"
    "$bin" -max_total_time="$secs" -timeout=25 -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" \
        "$corpus" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)
    line="fuzz_$name: execs ${execs:-?}, ${cov:-no coverage line}, exit $rc"
    summary+=("$line")
    if [[ $rc -ne 0 ]]; then
        echo "!! fuzz_$name failed (exit $rc); the end of its log:" >&2
        tail -n 40 "$log" >&2
        failed+=("$name")
    fi
done

echo
echo "== summary"
for line in "${summary[@]}"; do
    echo "$line"
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all fuzz targets ran clean"
