#!/usr/bin/env bash
# tests/fuzz/run.sh [seconds]: builds every tests/fuzz/fuzz_<name>.c with
# clang's libFuzzer, ASan and UBSan into build-fuzz/, and runs each for
# `seconds` (default 30). Seeds come from tests/fuzz/corpus/<name>/ when it
# exists; inputs the fuzzer discovers go to build-fuzz/corpus/<name>/ (never
# into the checked-in seeds), crashes to build-fuzz/artifacts/. Exits 1 when
# any target fails to build or finds a crash, leak, timeout or broken
# property. Needs clang and the -dev packages of jansson, libyaml and OpenSSL;
# no CMake configuration is involved.
set -u

secs=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build-fuzz"
cc=${CC:-clang}

# The sources each target links, besides itself. A new fuzz_<name>.c needs a line here.
declare -A srcs=(
    [jwt]="core/jwt.c core/b64url.c core/alloc.c core/status.c"
    [json]="core/json.c core/buf.c core/alloc.c core/status.c"
    [route]="services/gateway/routes.c core/yaml.c core/buf.c core/alloc.c core/status.c"
    [yaml_cfg]="core/yaml.c core/cfg.c core/buf.c core/alloc.c core/status.c"
)
declare -A incs=(
    [route]="-I$root/services/gateway"
)
pkgs=(jansson yaml-0.1 libcrypto)

if ! command -v "$cc" >/dev/null; then
    echo "run.sh: $cc not found (apt-get install clang)" >&2
    exit 1
fi
if ! libs=$(pkg-config --libs "${pkgs[@]}") || ! pkgcflags=$(pkg-config --cflags "${pkgs[@]}"); then
    echo "run.sh: missing development packages for: ${pkgs[*]}" >&2
    exit 1
fi
flags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
mkdir -p "$out/artifacts"

failed=()
summary=()
for target in "$root"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$target" .c)
    name=${name#fuzz_}
    if [[ -z "${srcs[$name]+set}" ]]; then
        echo "run.sh: no source list for fuzz_$name in tests/fuzz/run.sh" >&2
        failed+=("$name (no source list)")
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
