#!/usr/bin/env bash
# Starts a single-node cais platform in the background (make up).
set -euo pipefail
data_dir=$1 log_dir=$2
shift 2
cd "$(dirname "$0")/.."
mkdir -p "$data_dir" "$log_dir"
pidfile="$data_dir/caisd.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	echo "caisd is already running (pid $(cat "$pidfile")); 'make down' stops it"
else
	nohup bin/caisd --data-dir "$data_dir" "$@" >>"$log_dir/caisd.log" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 100); do
		if bin/cais --socket "$data_dir/caisd.sock" pool list >/dev/null 2>&1; then break; fi
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			echo "caisd failed to start; the end of $log_dir/caisd.log:" >&2
			tail -n 20 "$log_dir/caisd.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	if ! err=$(bin/cais --socket "$data_dir/caisd.sock" pool list 2>&1 >/dev/null); then
		echo "caisd is running (pid $(cat "$pidfile")) but not ready: $err" >&2
		echo "the end of $log_dir/caisd.log:" >&2
		tail -n 5 "$log_dir/caisd.log" >&2
		exit 1
	fi
fi
# A busybox image from Debian's busybox-static, so docker run works without
# a registry (the docker API socket is caisd's --docker-socket).
docker_sock=/run/cais/docker.sock
for arg in "$@"; do case $arg in --docker-socket=*) docker_sock=${arg#*=};; esac; done
prev=""; for arg in "$@"; do [ "$prev" = --docker-socket ] && docker_sock=$arg; prev=$arg; done
if [ -n "$docker_sock" ] && [ -x /bin/busybox ]; then
	for _ in $(seq 1 50); do [ -S "$docker_sock" ] && break; sleep 0.1; done
	if ! curl -sf --unix-socket "$docker_sock" http://docker/images/busybox:latest/json >/dev/null; then
		bin/cais image bootstrap busybox --docker-socket "$docker_sock" >/dev/null && echo "loaded image busybox:latest (from busybox-static)"
	fi
fi
# The bricks of started volumes come up in the background: wait for them
# (20 s at the most), so that a mount right after make up finds them.
for _ in $(seq 1 100); do
	st=$(bin/cais --socket "$data_dir/caisd.sock" volume status 2>&1)
	case $st in
	*"Status of volume"*) ;;
	*) break ;; # no started volume
	esac
	if printf '%s\n' "$st" | grep -q '^Brick' && ! printf '%s\n' "$st" | grep -q '^Brick .* N '; then
		break
	fi
	sleep 0.2
done
install -m 0755 bin/cais /usr/local/bin/cais
install -m 0755 bin/caisd /usr/local/bin/caisd
# mount -t cais calls /sbin/mount.cais.
ln -sf /usr/local/bin/cais /sbin/mount.cais
cat <<MSG
cais is up: caisd pid $(cat "$pidfile"), data in $data_dir, log in $log_dir/caisd.log.
cais and caisd are installed in /usr/local/bin. Try:
  cais pool list
  cais pool token                    # a new node joins with: caisd --join-token TOKEN
  cais peer probe HOST               # on this node, once HOST runs caisd --join-token
  cais volume create NAME HOST:/data/brick1/brick ...
  cais volume start NAME && cais volume info
  export DOCKER_HOST=unix://$docker_sock   # then the docker CLI works:
  docker run --rm busybox echo hi
'make down' stops the platform.
MSG
bin/cais --socket "$data_dir/caisd.sock" pool list
