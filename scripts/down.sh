#!/usr/bin/env bash
# Stops the platform started by make up: caisd, then the bricks it ran.
set -uo pipefail
data_dir=$1
pidfile="$data_dir/caisd.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	pid=$(cat "$pidfile")
	kill "$pid"
	for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	kill -9 "$pid" 2>/dev/null || true
	echo "caisd (pid $pid) stopped"
else
	echo "caisd is not running"
fi
rm -f "$pidfile"
# Bricks outlive caisd by design (the next caisd adopts them); down stops them.
for f in "$data_dir"/run/bricks/*.json; do
	[ -e "$f" ] || continue
	pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$f")
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && echo "brick (pid $pid) stopped"
	rm -f "$f"
done
exit 0
