#!/usr/bin/env bash
# The whole agent against a large SpiNNaker machine: FRAMES simulated frames of 24 boards (default 50, so
# 1,200 boards) polled every 5 s. Reports the agent's CPU time per poll cycle (from /proc, so the
# simulators, which run in their own process, do not count) and checks that every board is fresh.
set -euo pipefail
FRAMES=${FRAMES:-50}
SECONDS_TO_RUN=${SECONDS_TO_RUN:-60}
INTERVAL_S=5
cd "$(dirname "$0")/.."
# One cargo call for both packages, as bench-vs-node-exporter.sh does: with fat LTO, building the agent
# alone after building them together (or the other way round) relinks it, which takes minutes.
# SKIP_BUILD=1 uses the binaries already in target/release.
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release -q -p agent -p accel-sim
fi
work=$(mktemp -d)
trap 'kill $agent_pid 2>/dev/null || true; exec 3>&-; rm -rf "$work"' EXIT

# The simulators serve until their stdin (fd 3 here) closes.
mkfifo "$work/sim-in"
target/release/bmp-sim "$FRAMES" 24 < "$work/sim-in" > "$work/bmps" &
exec 3> "$work/sim-in"
for _ in $(seq 100); do [ "$(wc -l < "$work/bmps")" -ge "$FRAMES" ] && break; sleep 0.1; done

{
  echo "listen = \"127.0.0.1:19877\""
  echo "state_dir = \"$work/state\""
  echo "socket = \"$work/agent.sock\""
  echo "sysfs_root = \"$work/sys\""
  echo "[discovery]"
  echo "enabled = false"
  echo "[spinnaker]"
  echo "interval = \"${INTERVAL_S}s\""
  echo "[[spinnaker.machine]]"
  echo "name = \"bench\""
  while read -r addr; do
    echo "[[spinnaker.machine.frame]]"
    echo "bmp = \"$addr\""
    echo "boards = 24"
  done < "$work/bmps"
} > "$work/agent.toml"
mkdir -p "$work/sys"

target/release/accel-agent --config "$work/agent.toml" --log-level warn &
agent_pid=$!
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
metric() { curl -s 127.0.0.1:19877/metrics | awk -v m="$1" '$1 ~ "^"m {s += $2} END {print s + 0}'; }

sleep 12   # start-up and two polls
c0=$(cpu); sent0=$(metric 'accel_spinnaker_scp_packets_total\{kind="sent"'); t0=$(date +%s.%N)
sleep "$SECONDS_TO_RUN"
c1=$(cpu); sent1=$(metric 'accel_spinnaker_scp_packets_total\{kind="sent"'); t1=$(date +%s.%N)
up=$(curl -s 127.0.0.1:19877/metrics | grep -c '^accel_device_up{.*} 1')
timeouts=$(metric 'accel_spinnaker_scp_packets_total\{kind="timeout"')
poll=$(metric 'accel_spinnaker_poll_duration_seconds')
rss=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$ticks" -v iv="$INTERVAL_S" \
    -v s0="$sent0" -v s1="$sent1" -v up="$up" -v n="$((FRAMES * 24))" -v to="$timeouts" -v poll="$poll" -v rss="$rss" 'BEGIN {
  cycles = (t1 - t0) / iv
  printf "boards: %d, up and fresh: %d\n", n, up
  printf "cycles measured: %.1f; agent CPU per cycle: %.1f ms (%.2f%% of one core)\n", cycles, (c1 - c0) / hz * 1000 / cycles, (c1 - c0) / hz / (t1 - t0) * 100
  printf "SCP datagrams sent per cycle: %.0f; timeouts since start: %d; last poll took %.1f ms; peak RSS %.1f MiB\n", (s1 - s0) / cycles, to, poll * 1000, rss / 1024
}'
