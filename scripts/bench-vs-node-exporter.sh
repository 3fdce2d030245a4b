#!/usr/bin/env bash
# Benchmark accel-agent against prometheus-node-exporter on the large synthetic sysfs tree
# (64 hwmon chips x 24 sensors, 64 thermal zones, 32 cooling devices, 16 powercap zones,
# 128 PCI devices with AER), as the project's issue asks. The summary goes into the README.
#
# Measures, per exporter: CPU seconds per 1000 collections (utime+stime from /proc/PID/stat),
# peak RSS (VmHWM from /proc/PID/status), and scrape latency under load (wrk, 50 connections).
# Also the same work on both sides, per cycle: the agent's collection plus the encode and gzip of one
# scrape asking for gzip, against one node_exporter scrape asking for gzip (its collection, encode, gzip).
# Each run measures node_exporter and the agent side by side, in alternating order (node_exporter first
# in odd runs); the summary gives the median of RUNS runs with the spread (min-max), and the ratios are
# the medians of each run's own ratio.
#
# Environment:
#   RUNS            side-by-side runs (default 3)
#   BENCH_SECONDS   length of the accel-agent measurement window per config (default 20)
#   NE_SCRAPES      sequential node_exporter scrapes to measure (default 1000)
#   WRK_SECONDS     duration of each wrk run (default 10)
#   SKIP_BUILD=1    use the existing release binaries
#   AGENT_BIN       the accel-agent binary to measure (default: the release build), e.g. an older build
#   CYCLE_ONLY=1    only CPU per collection, CPU per gzip cycle and peak RSS: no wrk load, no
#                   all-collectors run (a run takes about a minute instead of four)
#
# Needs root (or the tools already installed) on Debian: installs prometheus-node-exporter and wrk.
set -euo pipefail

RUNS=${RUNS:-3}
CYCLE_ONLY=${CYCLE_ONLY:-0}
BENCH_SECONDS=${BENCH_SECONDS:-20}
NE_SCRAPES=${NE_SCRAPES:-1000}
WRK_SECONDS=${WRK_SECONDS:-10}
NE_BIN=/usr/bin/prometheus-node-exporter

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
agent_bin=${AGENT_BIN:-$target/release/accel-agent}
gen_bin=$target/release/gen-sysfs-tree

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/accel-bench.XXXXXX")
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------------------------

need_pkgs=()
[[ -x $NE_BIN ]] || need_pkgs+=(prometheus-node-exporter)
[[ $CYCLE_ONLY == 1 ]] || command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v curl >/dev/null || need_pkgs+=(curl)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2
fi
# The Debian package starts a node_exporter service on :9100; it does not interfere (we use our own ports).

# --- build and tree ----------------------------------------------------------------------------

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$root" && cargo build --release -p agent -p accel-sim >&2)
fi
[[ -x $agent_bin && -x $gen_bin ]] || die "missing $agent_bin or $gen_bin"

log "generating the benchmark sysfs tree in $tmp/sys"
"$gen_bin" "$tmp/sys"

# --- helpers -----------------------------------------------------------------------------------

clk_tck=$(getconf CLK_TCK)

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# CPU seconds (user+system, all threads) a process has used so far.
cpu_seconds() {
    local rest
    rest=$(sed 's/^.*) //' "/proc/$1/stat") # drop "pid (comm) "; utime and stime become fields 12 and 13
    awk -v tck="$clk_tck" '{ printf "%.2f\n", ($12 + $13) / tck }' <<<"$rest"
}

peak_rss_mib() {
    awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

# wait_http URL PID SECONDS: until URL answers 200; fails if the process dies or time runs out.
wait_http() {
    local url=$1 pid=$2 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

stop() {
    local pid=$1 p keep=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${pids[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

# scrape_seq PORT N GZIP [RATE]: N scrapes of /metrics, one after another on one keep-alive connection
# (URL globbing: one curl process), at most RATE per second if given, asking for gzip if GZIP is 1.
# Prints one "HTTP-code bytes" line per scrape (bytes as sent, compressed or not).
scrape_seq() {
    local args=(-s -o /dev/null -w '%{http_code} %{size_download}\n')
    [[ $3 == 1 ]] && args+=(-H "Accept-Encoding: gzip")
    [[ -n ${4:-} ]] && args+=(--rate "$4/s")
    curl "${args[@]}" "http://127.0.0.1:$1/metrics?n=[1-$2]"
}

# per_1000 CPU0 CPU1 N: CPU seconds per 1000 of N events.
per_1000() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }'
}

# Sum of accel_collector_collections_total{collector="NAME"} in the current /metrics.
collections() {
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk -v c="$2" '$1 == "accel_collector_collections_total{collector=\"" c "\"}" { print $2; found = 1 } END { if (!found) print "NaN" }'
}

# run_wrk NAME PORT [gzip]: runs wrk and sets WRK_<field>[NAME]. With "gzip" the requests carry
# Accept-Encoding: gzip, as Prometheus' scrapes do.
declare -A W_P50 W_P99 W_RPS W_REQS W_KIB W_NON2XX W_SOCKERR W_SOCKDETAIL
run_wrk() {
    local name=$1 port=$2 out hdr=()
    [[ ${3:-} == gzip ]] && hdr=(-H "Accept-Encoding: gzip")
    log "$name: wrk -t2 -c50 -d${WRK_SECONDS}s --latency ${hdr[*]}"
    out=$(wrk -t2 -c50 -d"${WRK_SECONDS}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/metrics")
    printf '%s\n' "$out" >"$tmp/wrk-$name.txt"
    # Latencies normalised to milliseconds.
    to_ms='function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }'
    W_P50[$name]=$(awk "$to_ms"' $1 == "50%" { printf "%.2f", ms($2) }' <<<"$out")
    W_P99[$name]=$(awk "$to_ms"' $1 == "99%" { printf "%.2f", ms($2) }' <<<"$out")
    W_RPS[$name]=$(awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' <<<"$out")
    W_REQS[$name]=$(awk '$2 == "requests" && $3 == "in" { print $1 }' <<<"$out")
    # Mean response size ("N requests in T, X read"): shows when responses shrink (errors, lost series).
    W_KIB[$name]=$(awk -v n="${W_REQS[$name]}" '$2 == "requests" && $3 == "in" {
        v = $5; u = 1; if (v ~ /KB$/) u = 1; if (v ~ /MB$/) u = 1024; if (v ~ /GB$/) u = 1048576; if (v ~ /TB$/) u = 1073741824
        if (v ~ /[0-9]B$/) u = 1 / 1024; sub(/[KMGT]?B$/, "", v); printf "%.0f", v * u / n }' <<<"$out")
    W_NON2XX[$name]=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' <<<"$out")
    W_NON2XX[$name]=${W_NON2XX[$name]:-0}
    W_SOCKDETAIL[$name]=$(sed -n 's/^ *Socket errors: *//p' <<<"$out")
    W_SOCKERR[$name]=$(awk -F'[ ,]+' '/Socket errors:/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s }' <<<"$out")
    W_SOCKERR[$name]=${W_SOCKERR[$name]:-0}
}

declare -A CPU_PER_1000 RSS RSS_AFTER_WRK NOTE SERIES SUSPECT RUN_NOTES GZ_BYTES CYCLE_SCRAPES

# --- node_exporter -----------------------------------------------------------------------------

bench_ne() {
    local ne_port ne_pid cpu0 cpu1 t0 t1 codes ne_ok
    ne_port=$(free_port)
    log "starting node_exporter on 127.0.0.1:$ne_port"
    "$NE_BIN" --path.sysfs="$tmp/sys" --collector.disable-defaults --collector.hwmon --collector.thermal_zone \
        --collector.powersupplyclass --collector.rapl --web.listen-address="127.0.0.1:$ne_port" \
        >"$tmp/node-exporter.log" 2>&1 &
    ne_pid=$!
    pids+=("$ne_pid")
    wait_http "http://127.0.0.1:$ne_port/metrics" "$ne_pid" 10 || { cat "$tmp/node-exporter.log" >&2; die "node_exporter did not come up"; }
    SERIES[ne]=$(curl -sf "http://127.0.0.1:$ne_port/metrics" | grep -vc '^#')

    log "node_exporter: $NE_SCRAPES sequential scrapes"
    cpu0=$(cpu_seconds "$ne_pid")
    t0=$(date +%s.%N)
    codes=$(scrape_seq "$ne_port" "$NE_SCRAPES" 0)
    t1=$(date +%s.%N)
    cpu1=$(cpu_seconds "$ne_pid")
    ne_ok=$(grep -c '^200 ' <<<"$codes" || true)
    ((ne_ok == NE_SCRAPES)) || NOTE[ne]="only $ne_ok of $NE_SCRAPES scrapes returned 200; "
    CPU_PER_1000[ne]=$(per_1000 "$cpu0" "$cpu1" "$ne_ok")
    RSS[ne]=$(peak_rss_mib "$ne_pid")
    ne_wall=$(awk -v a="$t0" -v b="$t1" -v n="$ne_ok" 'BEGIN { printf "%.1f ms/scrape", (b - a) * 1000 / n }')
    log "node_exporter: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }') CPU s over $ne_ok scrapes ($ne_wall)"

    # The same work as the agent's cycle below: one collection, encode and gzip per scrape.
    log "node_exporter: $NE_SCRAPES sequential gzip scrapes"
    cpu0=$(cpu_seconds "$ne_pid")
    codes=$(scrape_seq "$ne_port" "$NE_SCRAPES" 1)
    cpu1=$(cpu_seconds "$ne_pid")
    ne_ok=$(grep -c '^200 ' <<<"$codes" || true)
    ((ne_ok == NE_SCRAPES)) || NOTE[ne]+="only $ne_ok of $NE_SCRAPES gzip scrapes returned 200; "
    CPU_PER_1000[ne_cycle]=$(per_1000 "$cpu0" "$cpu1" "$ne_ok")
    GZ_BYTES[ne]=$(awk '$1 == 200 { s += $2; n++ } END { if (n) printf "%.0f", s / n }' <<<"$codes")
    if [[ $CYCLE_ONLY != 1 ]]; then
        run_wrk ne "$ne_port"
        run_wrk ne_gz "$ne_port" gzip
    fi
    RSS_AFTER_WRK[ne]=$(peak_rss_mib "$ne_pid")
    ne_version=$("$NE_BIN" --version 2>&1 | head -n1)
    stop "$ne_pid"
}

# --- accel-agent -------------------------------------------------------------------------------

# node_exporter runs only its sysfs collectors here; host resources come from /proc and have their own
# comparison (docs/resources.md).
cat >"$tmp/same.toml" <<'EOF'
poll_interval = "100ms"
[collectors.pci_aer]
enabled = false
[collectors.resources]
enabled = false
EOF
cat >"$tmp/all.toml" <<'EOF'
poll_interval = "100ms"
EOF

# agent_health NAME PORT PHASE: appends to NOTE[NAME] whatever is off in the agent's own metrics:
# collectors not succeeding, non-zero read errors, stuck threads, and a changed number of series.
agent_health() {
    local name=$1 port=$2 phase=$3 f=$tmp/metrics-$name-health.txt bad series
    curl -sf "http://127.0.0.1:$port/metrics" >"$f" || { NOTE[$name]+="$phase: /metrics failed; "; return; }
    bad=$(awk '
        /^accel_collector_success\{/ && $2 + 0 != 1 { printf "%s ", $0 }
        /^accel_sysfs_read_errors_total\{/ && $2 + 0 != 0 { printf "%s ", $0 }
        /^accel_collector_stuck_threads\{/ && $2 + 0 != 0 { printf "%s ", $0 }' "$f")
    series=$(grep -vc '^#' "$f")
    [[ -z $bad ]] || { NOTE[$name]+="$phase: ${bad}; "; SUSPECT[$name]=1; }
    [[ $series == "${SERIES[$name]}" ]] || { NOTE[$name]+="$phase: $series series (${SERIES[$name]} at start); "; SUSPECT[$name]=1; }
}

bench_agent() {
    local name=$1 cfg=$2 port pid cpu0 cpu1 c0 c1 n scrapes ok c other d
    port=$(free_port)
    log "$name: starting accel-agent on 127.0.0.1:$port with $(basename "$cfg")"
    "$agent_bin" --sysfs-root "$tmp/sys" --listen "127.0.0.1:$port" --config "$cfg" --log-level warn \
        --state-dir "$tmp/state-$name" --socket "$tmp/agent-$name.sock" \
        >"$tmp/agent-$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_http "http://127.0.0.1:$port/-/ready" "$pid" 10 || { cat "$tmp/agent-$name.log" >&2; die "accel-agent ($name) not ready within 10 s"; }
    curl -sf "http://127.0.0.1:$port/metrics" >"$tmp/metrics-$name-start.txt"
    SERIES[$name]=$(grep -vc '^#' "$tmp/metrics-$name-start.txt")

    log "$name: scraping every 100 ms for ${BENCH_SECONDS}s"
    scrapes=$((BENCH_SECONDS * 10))
    cpu0=$(cpu_seconds "$pid")
    c0=$(collections "$port" hwmon)
    codes=$(scrape_seq "$port" "$scrapes" 0 10)
    c1=$(collections "$port" hwmon)
    cpu1=$(cpu_seconds "$pid")
    ok=$(grep -c '^200 ' <<<"$codes" || true)
    n=$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')
    ((n > 0)) || die "$name: no hwmon collections counted ($c0 -> $c1)"
    CPU_PER_1000[$name]=$(per_1000 "$cpu0" "$cpu1" "$n")
    RSS[$name]=$(peak_rss_mib "$pid")
    log "$name: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }') CPU s over $n collections, $ok/$scrapes scrapes 200"
    NOTE[$name]=""
    if [[ $ok != "$scrapes" ]]; then NOTE[$name]="only $ok of $scrapes scrapes returned 200; "; fi

    agent_health "$name" "$port" "after the window"
    NOTE[$name]+="$(awk '/^accel_collector_duration_seconds/ { sub(/.*collector="/, ""); sub(/"}/, ""); printf "%s %.1fms ", $1, $2 * 1000 }' "$tmp/metrics-$name-health.txt" | sed 's/^/last durations: /'); "

    [[ $name == same ]] && agent_cycle "$name" "$port" "$pid"
    if [[ $CYCLE_ONLY != 1 ]]; then
        run_wrk "$name" "$port"
        run_wrk "${name}_gz" "$port" gzip
    fi
    RSS_AFTER_WRK[$name]=$(peak_rss_mib "$pid")
    sleep 0.5 # let one more collection round finish after the load
    agent_health "$name" "$port" "after wrk"
    stop "$pid"
    if [[ -s $tmp/agent-$name.log ]]; then
        log "$name: accel-agent logged:"
        sed 's/^/    /' "$tmp/agent-$name.log" | head -n 20 >&2
        NOTE[$name]+=" (logged $(wc -l <"$tmp/agent-$name.log") warning/error lines)"
    fi
}

# agent_cycle NAME PORT PID: the same work as a node_exporter gzip scrape, per cycle: the agent collects
# every 100 ms and is scraped every 100 ms asking for gzip, so each collection is followed by one encode
# and one compression. CPU per cycle is the process's CPU over the window divided by the collections.
agent_cycle() {
    local name=$1 port=$2 pid=$3 cpu0 cpu1 c0 c1 n codes ok scrapes=$((BENCH_SECONDS * 10))
    log "$name: gzip scrapes every 100 ms for ${BENCH_SECONDS}s"
    cpu0=$(cpu_seconds "$pid")
    c0=$(collections "$port" hwmon)
    codes=$(scrape_seq "$port" "$scrapes" 1 10)
    c1=$(collections "$port" hwmon)
    cpu1=$(cpu_seconds "$pid")
    ok=$(grep -c '^200 ' <<<"$codes" || true)
    n=$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')
    ((n > 0)) || die "$name: no hwmon collections counted in the gzip window ($c0 -> $c1)"
    ((ok == scrapes)) || NOTE[$name]+="only $ok of $scrapes gzip scrapes returned 200; "
    CPU_PER_1000[${name}_cycle]=$(per_1000 "$cpu0" "$cpu1" "$n")
    GZ_BYTES[$name]=$(awk '$1 == 200 { s += $2; n++ } END { if (n) printf "%.0f", s / n }' <<<"$codes")
    CYCLE_SCRAPES[$name]="$ok scrapes for $n collections"
    log "$name: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }') CPU s over $n collections with gzip scrapes ($ok)"
}

# record RUN: appends this run's figures to the results file, one "exporter<TAB>figure<TAB>value" per line.
results=$tmp/results.tsv
record() {
    local run=$1 k
    for k in ne same all; do
        printf '%s\t%s\t%s\n' "$k" cpu "${CPU_PER_1000[$k]:-}" "$k" rss "${RSS[$k]:-}" "$k" rss_wrk "${RSS_AFTER_WRK[$k]:-}" >>"$results"
    done
    for k in ne same; do
        printf '%s\t%s\t%s\n' "$k" cycle "${CPU_PER_1000[${k}_cycle]}" "$k" gz_bytes "${GZ_BYTES[$k]}" >>"$results"
    done
    awk -v a="${CPU_PER_1000[same_cycle]}" -v b="${CPU_PER_1000[ne_cycle]}" \
        'BEGIN { printf "ratio\tcycle\t%.3f\n", a / b }' >>"$results"
    log "run $run: CPU/1000 gzip cycles ne ${CPU_PER_1000[ne_cycle]} same ${CPU_PER_1000[same_cycle]} (${CYCLE_SCRAPES[same]}); bytes/scrape ne ${GZ_BYTES[ne]} same ${GZ_BYTES[same]}"
    awk -v a="${CPU_PER_1000[same]}" -v b="${CPU_PER_1000[ne]}" -v r="${RSS[same]}" -v s="${RSS[ne]}" \
        'BEGIN { printf "ratio\tcpu\t%.3f\nratio\trss\t%.3f\n", a / b, r / s }' >>"$results"
    if [[ $CYCLE_ONLY == 1 ]]; then
        log "run $run: CPU/1000 ne ${CPU_PER_1000[ne]} same ${CPU_PER_1000[same]}; RSS ne ${RSS[ne]} same ${RSS[same]} MiB"
        return
    fi
    for k in ne same all ne_gz same_gz all_gz; do
        printf '%s\t%s\t%s\n' "$k" p50 "${W_P50[$k]}" "$k" p99 "${W_P99[$k]}" "$k" rps "${W_RPS[$k]}" \
            "$k" kib "${W_KIB[$k]}" "$k" non2xx "${W_NON2XX[$k]}" "$k" sockerr "${W_SOCKERR[$k]}" >>"$results"
    done
    log "run $run: CPU/1000 ne ${CPU_PER_1000[ne]} same ${CPU_PER_1000[same]} all ${CPU_PER_1000[all]}; RSS ne ${RSS[ne]} same ${RSS[same]} all ${RSS[all]} MiB; gzip p99 ne ${W_P99[ne_gz]} same ${W_P99[same_gz]} all ${W_P99[all_gz]} ms"
}

for run in $(seq "$RUNS"); do
    log "run $run of $RUNS"
    NOTE=()
    # Alternating order, so that whatever else the machine does drifts over both sides alike.
    if ((run % 2)); then
        bench_ne
        bench_agent same "$tmp/same.toml"
    else
        bench_agent same "$tmp/same.toml"
        bench_ne
    fi
    [[ $CYCLE_ONLY == 1 ]] || bench_agent all "$tmp/all.toml"
    record "$run"
    for k in ne same all; do
        n=$(sed 's/[; ]*$//; s/ *; *\(; *\)*/; /g' <<<"${NOTE[$k]:-}")
        [[ -z $n ]] || RUN_NOTES[$k]+="run $run: $n; "
    done
done
agent_version=$("$agent_bin" --version)

# --- summary -----------------------------------------------------------------------------------

# med EXPORTER FIGURE [FORMAT]: "median (min-max)" over the runs, or "median" when all runs agree.
# FORMAT (printf) overrides the precision chosen by magnitude.
med() {
    awk -F'\t' -v k="$1" -v f="$2" -v given="${3:-}" '$1 == k && $2 == f && $3 != "" { v[n++] = $3 + 0 }
        END {
            if (n == 0) { print "-"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            fmt = (m >= 100) ? "%.0f" : (m >= 10) ? "%.1f" : "%.2f"
            if (given != "") fmt = given
            out = sprintf(fmt, m)
            if (v[0] != v[n - 1]) out = out sprintf(" (" fmt "-" fmt ")", v[0], v[n - 1])
            print out
        }' "$results"
}

row() {
    printf '%-30s %-20s %-20s %-20s %-24s %-24s %-22s %-9s %-14s %s\n' "$@"
}
cell() { # key label
    row "$2" "$(med "$1" cpu)" "$(med "$1" rss)" "$(med "$1" rss_wrk)" "$(med "$1" p50)" "$(med "$1" p99)" \
        "$(med "$1" rps)" "$(med "$1" kib)" "$(med "$1" non2xx)" "$(med "$1" sockerr)"
}

echo
echo "== accel-agent vs node_exporter: large benchmark tree, median of $RUNS side-by-side runs (min-max) =="
echo "machine:       $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)"
echo "node_exporter: $ne_version (collectors hwmon, thermal_zone, powersupplyclass, rapl; default --web.max-requests=40)"
echo "accel-agent:   $agent_version (poll_interval 100ms)"
echo "tree:          64 hwmon chips x 24 sensors, 64 thermal zones, 32 cooling devices, 16 powercap zones, 128 PCI devices with AER"
echo "method:        node_exporter: $NE_SCRAPES sequential scrapes per run (1 scrape = 1 collection);"
echo "               accel-agent: ${BENCH_SECONDS}s of background collection at 100ms, scraped every 100ms;"
echo "               gzip cycle: node_exporter $NE_SCRAPES sequential gzip scrapes; accel-agent ${BENCH_SECONDS}s scraped"
echo "               every 100ms with gzip, CPU divided by its collections (collection + encode + gzip each)"
[[ $CYCLE_ONLY == 1 ]] ||
    echo "               load: wrk -t2 -c50 -d${WRK_SECONDS}s on the same machine; latency includes non-2xx responses"
echo
echo "the same work per cycle (one collection, encode and gzip; CPU s per 1000 cycles, bytes per gzip scrape):"
echo "  node_exporter:                 $(med ne cycle), $(med ne gz_bytes %.0f) bytes"
echo "  accel-agent (same collectors): $(med same cycle), $(med same gz_bytes %.0f) bytes"
echo "  ratio, median of the runs' own ratios: $(med ratio cycle %.3f)"
echo
if [[ $CYCLE_ONLY == 1 ]]; then
    echo "CPU s per 1000 collections (plain scrapes): node_exporter $(med ne cpu), accel-agent $(med same cpu)"
    echo "peak RSS MiB: node_exporter $(med ne rss), accel-agent $(med same rss)"
    echo "ratio agent(same)/node_exporter, median of the runs' own ratios: CPU $(med ratio cpu %.3f), peak RSS $(med ratio rss %.3f)"
    echo "notes node_exporter: $(sed 's/[; ]*$//' <<<"${RUN_NOTES[ne]:-none}")"
    echo "notes agent(same):   $(sed 's/[; ]*$//' <<<"${RUN_NOTES[same]:-none}")"
    exit 0
fi
row "exporter" "CPU s/1000 coll." "peak RSS MiB" "peak RSS +wrk MiB" "p50 ms" "p99 ms" "req/s" "KiB/resp" "non-2xx" "socket errors"
cell ne "node_exporter"
cell same "accel-agent (same collectors)"
cell all "accel-agent (all collectors)"
echo
echo "the same load with Accept-Encoding: gzip (as Prometheus scrapes):"
row "exporter" "" "" "" "p50 ms" "p99 ms" "req/s" "KiB/resp" "non-2xx" "socket errors"
for k in ne same all; do
    label=$([[ $k == ne ]] && echo node_exporter || echo "accel-agent ($k collectors)")
    row "$label" "" "" "" "$(med "${k}_gz" p50)" "$(med "${k}_gz" p99)" "$(med "${k}_gz" rps)" "$(med "${k}_gz" kib)" \
        "$(med "${k}_gz" non2xx)" "$(med "${k}_gz" sockerr)"
done
echo
echo "ratio agent(same)/node_exporter, median of the runs' own ratios: CPU $(med ratio cpu %.3f), peak RSS $(med ratio rss %.3f)"
echo
echo "series per scrape: node_exporter ${SERIES[ne]}, agent(same) ${SERIES[same]}, agent(all) ${SERIES[all]}"
for k in ne same all ne_gz same_gz all_gz; do
    if [[ -n ${W_SOCKDETAIL[$k]:-} ]]; then echo "wrk socket errors ($k, last run): ${W_SOCKDETAIL[$k]}"; fi
done
for k in same all; do
    if [[ -n ${SUSPECT[$k]:-} ]]; then
        echo "WARNING: accel-agent ($k) was unhealthy during a run (see notes): its row may not be representative"
    fi
done
note() { local n; n=$(sed 's/[; ]*$//; s/ *; */; /g' <<<"${RUN_NOTES[$1]:-}"); echo "${n:-none}"; }
echo "notes node_exporter: $(note ne)"
echo "notes agent(same):   $(note same)"
echo "notes agent(all):    $(note all)"
