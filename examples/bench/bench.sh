#!/usr/bin/env bash
# make bench: gproxy vs nginx vs HAProxy (and no proxy at all) on loopback,
# same two gRPC backends, same h2load loads, one core for each proxy.
#
# The proxy runs alone on core $PROXY_CPU (GOMAXPROCS=1, worker_processes 1,
# nbthread 1); h2load, the helper and both backends share core $LOAD_CPU.
# For each proxy it measures:
#   - unary RPS and proxy CPU us/request (utime+stime from /proc/PID/stat),
#     at 4 connections x 32 streams and at 64 connections x 100 streams;
#   - p50/p99 latency at a fixed 5,000 calls/s (h2load --rps, per-request log);
#   - MB/s of server-streaming 1 MiB messages (4 connections);
#   - RSS per 1,000 idle HTTP/2 client connections.
# A benchmark, not a test: nothing fails on a slow number. Bounded in time
# (each load runs $D seconds; about 4 minutes in all). Results go to
# bench-out/ (ignored by git) and to stdout.
#
#   examples/bench/bench.sh
#   PROXIES="nginx haproxy" D=5 examples/bench/bench.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
PROXIES=${PROXIES:-direct gproxy nginx haproxy}
D=${D:-8}                  # seconds per load
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
# Ports below Linux's ephemeral range (32768-60999), so that no client
# socket of this or any other load can be holding them.
B1=127.0.0.1:20061
B2=127.0.0.1:20062
declare -A PORT=([direct]=20061 [gproxy]=20001 [nginx]=20002 [haproxy]=20003)
RPC=/grpc.testing.TestService/UnaryCall
TICK=$(getconf CLK_TCK)

mkdir -p bench-out
STAMP=$(date +%Y%m%d-%H%M%S)
REPORT=$ROOT/bench-out/bench-$STAMP.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gproxy-bench.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	exec 8>&- 2>/dev/null || true
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$*" | tee -a "$REPORT.log" >&2; }

wait_port() {
	local deadline=$((SECONDS + 10))
	while ((SECONDS < deadline)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	log "nothing listening on port $1"
	return 1
}

# cpu_ticks PID: utime+stime of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

for p in 127.0.0.1:20061 127.0.0.1:20062 127.0.0.1:20001 127.0.0.1:20002 127.0.0.1:20003; do
	if (exec 3<>"/dev/tcp/${p%:*}/${p##*:}") 2>/dev/null; then
		echo "bench: $p is in use" >&2
		exit 1
	fi
done

log "building..."
go build -o "$tmp/backend" ./examples/backend
go build -o "$tmp/benchtool" ./examples/bench/benchtool
if [[ " $PROXIES " == *" gproxy "* ]]; then
	if ! go build -o "$tmp/gproxy" ./cmd/gproxy 2>"$tmp/build.err"; then
		log "gproxy does not build; leaving it out:"
		log "$(head -5 "$tmp/build.err")"
		PROXIES=${PROXIES//gproxy/}
	fi
fi
"$tmp/benchtool" msg -o "$tmp/unary.bin"

for i in 1 2; do
	b=B$i
	GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$tmp/backend" -addr "${!b}" -name "b$i" 2>>"$REPORT.log" &
	pids+=($!)
done
wait_port 20061
wait_port 20062

# Configs. nginx gets keepalive to the upstreams and keepalive_requests
# raised, or it closes client connections every 1000 calls.
upstream_block="upstream grpc_servers {
        server $B1;
        server $B2;
        keepalive 512;
        keepalive_requests 1000000;
    }"
cat >"$tmp/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 16000; }
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    keepalive_requests 1000000;
    $upstream_block
    server {
        listen 127.0.0.1:${PORT[nginx]} http2;
        location / { grpc_pass grpc://grpc_servers; }
    }
}
CONF
cat >"$tmp/gproxy.conf" <<CONF
daemon off;
worker_processes 1;
pid $tmp/gproxy.pid;
error_log $tmp/gproxy-error.log warn;
events { worker_connections 16000; }
http {
    access_log off;
    keepalive_requests 1000000;
    $upstream_block
    server {
        listen 127.0.0.1:${PORT[gproxy]} http2;
        location / { grpc_pass grpc://grpc_servers; }
    }
}
CONF
cat >"$tmp/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 9000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} proto h2
    default_backend be
backend be
    balance roundrobin
    server b1 $B1 proto h2
    server b2 $B2 proto h2
CONF

# start_proxy NAME: starts it pinned to its core; sets PROXY_PID ("" for direct).
start_proxy() {
	PROXY_PID=
	case $1 in
	direct) return 0 ;;
	gproxy) GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$tmp/gproxy" -c "$tmp/gproxy.conf" 2>>"$tmp/gproxy-error.log" & ;;
	nginx) taskset -c "$PROXY_CPU" nginx -p "$tmp/" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" & ;;
	haproxy) taskset -c "$PROXY_CPU" haproxy -db -f "$tmp/haproxy.cfg" 2>>"$REPORT.log" & ;;
	esac
	PROXY_PID=$!
	pids+=("$PROXY_PID")
	wait_port "${PORT[$1]}"
}

stop_proxy() {
	[[ -n $PROXY_PID ]] || return 0
	kill "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
}

# load NAME CONNS STREAMS: an h2load unary run; prints "RPS US_PER_REQ FAILED".
load() {
	local name=$1 c=$2 m=$3 out="$tmp/h2load-$1-$2x$3.txt" t0=0 t1=0
	[[ -n $PROXY_PID ]] && t0=$(cpu_ticks "$PROXY_PID")
	taskset -c "$LOAD_CPU" h2load -c "$c" -m "$m" -D "$D" --warm-up-time=1 \
		-d "$tmp/unary.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
		"http://127.0.0.1:${PORT[$name]}$RPC" >"$out" 2>&1 || true
	[[ -n $PROXY_PID ]] && t1=$(cpu_ticks "$PROXY_PID")
	cat "$out" >>"$REPORT.log"
	awk -v dt=$((t1 - t0)) -v tick="$TICK" -v pp="$PROXY_PID" '
		/^finished in/ { gsub(",", "", $4); rps = $4 }
		/^requests:/ { ok = $8; failed = $10 + $12 + $14 }
		/^status codes:/ { non2xx = $5 + $7 + $9 }
		END {
			us = (pp == "" || ok == 0) ? "-" : sprintf("%.1f", dt * 1e6 / tick / ok)
			printf "%d %s %d\n", rps, us, failed + non2xx
		}' "$out"
}

# latency NAME: p50 and p99 in ms at 5,000 calls/s (10 clients x 500/s).
latency() {
	local out="$tmp/lat-$1.log"
	rm -f "$out"
	taskset -c "$LOAD_CPU" h2load -c 10 -m 1 --rps 500 -D "$D" --warm-up-time=1 --log-file "$out" \
		-d "$tmp/unary.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
		"http://127.0.0.1:${PORT[$1]}$RPC" >>"$REPORT.log" 2>&1 || true
	"$tmp/benchtool" pct -p 50,99 "$out" 2>/dev/null | awk '{ print $1, $2 }' || echo "- -"
}

# idle_rss NAME: KiB of proxy RSS per idle HTTP/2 connection, over 1,000.
idle_rss() {
	[[ -n $PROXY_PID ]] || { echo "-"; return; }
	local before after ipid
	before=$(rss_kib "$PROXY_PID")
	rm -f "$tmp/hold" && mkfifo "$tmp/hold"
	taskset -c "$LOAD_CPU" "$tmp/benchtool" idle -addr "127.0.0.1:${PORT[$1]}" -n 1000 <"$tmp/hold" >"$tmp/idle.out" 2>>"$REPORT.log" &
	ipid=$!
	exec 8>"$tmp/hold"
	local deadline=$((SECONDS + 30))
	while ! grep -q ready "$tmp/idle.out" 2>/dev/null; do
		if ((SECONDS > deadline)) || ! kill -0 "$ipid" 2>/dev/null; then
			exec 8>&-
			wait "$ipid" 2>/dev/null || true
			echo "-"
			return
		fi
		sleep 0.1
	done
	sleep 0.5
	after=$(rss_kib "$PROXY_PID")
	exec 8>&-
	wait "$ipid" 2>/dev/null || true
	awk -v a="$after" -v b="$before" 'BEGIN { printf "%.1f\n", (a - b) / 1000 }'
}

{
	echo "gproxy bench $STAMP on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "proxy on core $PROXY_CPU, load and backends on core $LOAD_CPU; $D s per load"
	echo "versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(h2load --version | head -1)"
	echo
	printf "%-8s | %12s %8s | %12s %8s | %8s %8s | %9s | %13s | %s\n" \
		proxy "RPS 4x32" "us/req" "RPS 64x100" "us/req" "p50 ms" "p99 ms" "1MiB MB/s" "KiB/idle conn" "failed"
	printf -- "---------+-----------------------+-----------------------+-------------------+-----------+---------------+-------\n"
} | tee "$REPORT"

for p in $PROXIES; do
	log "== $p"
	start_proxy "$p"
	kib=$(idle_rss "$p") # first, while the proxy is fresh
	read -r rps1 us1 f1 < <(load "$p" 4 32)
	read -r rps2 us2 f2 < <(load "$p" 64 100)
	read -r p50 p99 < <(latency "$p")
	mbs=$(taskset -c "$LOAD_CPU" "$tmp/benchtool" stream -addr "127.0.0.1:${PORT[$p]}" -c 4 -d "${D}s" 2>>"$REPORT.log" | awk '{ print $1 }' || true)
	stop_proxy
	printf "%-8s | %12s %8s | %12s %8s | %8s %8s | %9s | %13s | %s\n" \
		"$p" "$rps1" "$us1" "$rps2" "$us2" "$p50" "$p99" "${mbs:--}" "$kib" "$((f1 + f2))" | tee -a "$REPORT"
done

echo | tee -a "$REPORT"
echo "report: $REPORT (h2load output: $REPORT.log)" | tee -a "$REPORT"
