#!/usr/bin/env bash
# make bench, TLS part: gproxy, nginx and HAProxy terminating TLS on
# loopback with the same certificate (ECDSA P-256, then RSA 2048), one core
# each, in front of the same two cleartext gRPC backends:
#   - unary RPS and proxy CPU per call over long-lived TLS connections
#     (h2load, 4 connections x 32 streams, TLS 1.3);
#   - new full handshakes per second (benchtool handshake: TLS 1.3, X25519,
#     no resumption, one connection per handshake) and proxy CPU per
#     handshake.
# A benchmark, not a test: it prints a table (and bench-out/STAMP/tls.md).
#
#   examples/bench/tls.sh
#   PROXIES="gproxy haproxy" KEYS=ecdsa examples/bench/tls.sh
set -Eeuo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

PROXIES=${PROXIES:-gproxy nginx haproxy}
KEYS=${KEYS:-ecdsa rsa}
BENCH_PORT=${BENCH_PORT:-21000}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
DUR=${DUR:-5}     # seconds of each measured load
HS_C=${HS_C:-16}  # concurrent handshakes
OUT=${OUT:-$ROOT/bench-out}
RPC=/grpc.testing.TestService/UnaryCall
TICK=$(getconf CLK_TCK)
RUN=$OUT/tls-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gproxy-tlsbench.XXXXXX")
declare -A PID=()

say() { echo "tls-bench: $*" | tee -a "$RUN/bench.log" >&2; }
spawn() { local name=$1 logf=$2; shift 2; setsid "$@" >"$logf" 2>&1 </dev/null & PID[$name]=$!; }
stop() {
	local pid=${PID[$1]:-}
	[[ -n $pid ]] || return 0
	kill -TERM -- "-$pid" 2>/dev/null || true
	for _ in {1..50}; do [[ -r /proc/$pid/stat ]] || break; sleep 0.1; done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "PID[$1]"
}
cleanup() { local rc=$?; for n in "${!PID[@]}"; do stop "$n"; done; rm -rf "$tmp"; exit "$rc"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${PID[$1]}/stat"; }

ulimit -n 65536 2>/dev/null || true
go build -o "$tmp/backend" ./examples/backend
go build -o "$tmp/benchtool" ./examples/bench/benchtool
go build -o "$tmp/gproxy" ./cmd/gproxy
BT=$tmp/benchtool
"$BT" msg -o "$tmp/unary.bin"
read -r -a ports < <("$BT" ports -base "$BENCH_PORT" -n 5)
B1=127.0.0.1:${ports[0]} B2=127.0.0.1:${ports[1]}
declare -A ADDR=([gproxy]=127.0.0.1:${ports[2]} [nginx]=127.0.0.1:${ports[3]} [haproxy]=127.0.0.1:${ports[4]})
for i in 1 2; do
	b=B$i
	spawn "backend-$i" "$RUN/backend-$i.log" taskset -c "$LOAD_CPU" env GOMAXPROCS=1 "$tmp/backend" -addr "${!b}" -name "b$i"
done
sleep 0.5

# cert KIND: a self-signed localhost certificate, key and combined PEM.
cert() {
	case $1 in
	ecdsa) openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
		-keyout "$tmp/$1.key" -out "$tmp/$1.crt" 2>/dev/null ;;
	rsa) openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
		-keyout "$tmp/$1.key" -out "$tmp/$1.crt" 2>/dev/null ;;
	esac
	cat "$tmp/$1.crt" "$tmp/$1.key" >"$tmp/$1.pem"
}

# config PROXY KIND: writes its configuration for the certificate KIND.
config() {
	local p=$1 k=$2 a=${ADDR[$1]}
	local http="access_log off; keepalive_requests 1000000; client_max_body_size 0;
    upstream grpc_servers { server $B1; server $B2; keepalive 512; keepalive_requests 1000000; }
    server {
        listen $a ssl http2;
        ssl_certificate $tmp/$k.crt;
        ssl_certificate_key $tmp/$k.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { grpc_pass grpc://grpc_servers; }
    }"
	case $p in
	gproxy) printf 'daemon off;\nworker_processes 1;\npid %s/gproxy.pid;\nerror_log %s/gproxy-error.log warn;\nevents { worker_connections 16000; }\nhttp { %s }\n' \
		"$RUN" "$RUN" "$http" >"$RUN/gproxy-$k.conf" ;;
	nginx)
		mkdir -p "$RUN/nginx-tmp"
		printf 'daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\nevents { worker_connections 16000; }\nhttp { client_body_temp_path %s/nginx-tmp; %s }\n' \
			"$RUN" "$RUN" "$RUN/nginx-tmp" "$http" >"$RUN/nginx-$k.conf" ;;
	haproxy) cat >"$RUN/haproxy-$k.cfg" <<CFG
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
    bind $a ssl crt $tmp/$k.pem alpn h2
    default_backend be
backend be
    balance roundrobin
    server b1 $B1 proto h2
    server b2 $B2 proto h2
CFG
		;;
	esac
}

start() {
	local p=$1 k=$2 on=(taskset -c "$PROXY_CPU")
	case $p in
	gproxy) spawn gproxy "$RUN/gproxy-$k.log" "${on[@]}" env GOMAXPROCS=1 "$tmp/gproxy" -c "$RUN/gproxy-$k.conf" ;;
	nginx) spawn nginx "$RUN/nginx-$k.log" "${on[@]}" nginx -p "$RUN/" -e "$RUN/nginx-error.log" -c "$RUN/nginx-$k.conf" ;;
	haproxy) spawn haproxy "$RUN/haproxy-$k.log" "${on[@]}" haproxy -db -f "$RUN/haproxy-$k.cfg" ;;
	esac
	for _ in {1..100}; do
		h2load -c 1 -n 4 -d "$tmp/unary.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
			"https://${ADDR[$p]}$RPC" 2>/dev/null | grep -q '4 succeeded' && return 0
		sleep 0.1
	done
	say "$p ($k) did not answer over TLS"
	return 1
}

declare -A R=()
for k in $KEYS; do
	cert "$k"
	for p in $PROXIES; do
		config "$p" "$k"
		start "$p" "$k" || { stop "$p"; continue; }
		h2load -c 4 -m 32 -D 1 -d "$tmp/unary.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
			"https://${ADDR[$p]}$RPC" >/dev/null 2>&1 || true # warm-up
		t0=$(ticks "$p")
		taskset -c "$LOAD_CPU" timeout $((DUR + 30)) h2load -c 4 -m 32 -D "$DUR" -d "$tmp/unary.bin" \
			-H 'content-type: application/grpc' -H 'te: trailers' "https://${ADDR[$p]}$RPC" >"$RUN/h2load-$p-$k.txt" 2>&1 || true
		t1=$(ticks "$p")
		ok=$(awk '/^status codes:/ { print $3 }' "$RUN/h2load-$p-$k.txt")
		R[$p.$k.rps]=$(awk -v ok="${ok:-0}" -v d="$DUR" 'BEGIN { printf "%.0f", ok / d }')
		R[$p.$k.us]=$(awk -v dt=$((t1 - t0)) -v tick="$TICK" -v ok="${ok:-0}" 'BEGIN { printf "%.1f", (ok > 0 ? dt / tick / ok * 1e6 : 0) }')
		t0=$(ticks "$p")
		read -r hs hsn hsbad hsclient < <(taskset -c "$LOAD_CPU" timeout $((DUR + 30)) "$BT" handshake -addr "${ADDR[$p]}" -c "$HS_C" -t "${DUR}s")
		t1=$(ticks "$p")
		R[$p.$k.hs]=$hs R[$p.$k.hsbad]=$hsbad R[$p.$k.hsclient]=$hsclient
		R[$p.$k.hsus]=$(awk -v dt=$((t1 - t0)) -v tick="$TICK" -v n="$hsn" 'BEGIN { printf "%.0f", (n > 0 ? dt / tick / n * 1e6 : 0) }')
		R[$p.$k.hscore]=$(awk -v dt=$((t1 - t0)) -v tick="$TICK" -v d="$DUR" 'BEGIN { printf "%.0f%%", dt / tick / d * 100 }')
		say "$p $k: ${R[$p.$k.rps]} calls/s at ${R[$p.$k.us]} us/call; $hs handshakes/s ($hsbad failed) at ${R[$p.$k.hsus]} us each, proxy core ${R[$p.$k.hscore]}, client $hsclient us each"
		stop "$p"
	done
done

{
	echo "TLS, $(date -u +%Y-%m-%d), one core per proxy, TLS 1.3; $(nproc) cores, $(uname -r)"
	echo
	echo "| proxy | key | unary RPS 4x32 | us/call | handshakes/s | failed | us/handshake | proxy core busy | client us/handshake |"
	echo "|--|--|--:|--:|--:|--:|--:|--:|--:|"
	for k in $KEYS; do for p in $PROXIES; do
		echo "| $p | $k | ${R[$p.$k.rps]:--} | ${R[$p.$k.us]:--} | ${R[$p.$k.hs]:--} | ${R[$p.$k.hsbad]:--} | ${R[$p.$k.hsus]:--} | ${R[$p.$k.hscore]:--} | ${R[$p.$k.hsclient]:--} |"
	done; done
	for k in $KEYS; do
		[[ -n ${R[gproxy.$k.rps]:-} && -n ${R[haproxy.$k.rps]:-} ]] || continue
		awk -v k="$k" -v a="${R[gproxy.$k.rps]}" -v b="${R[haproxy.$k.rps]}" -v c="${R[gproxy.$k.hs]}" -v d="${R[haproxy.$k.hs]}" \
			-v e="${R[gproxy.$k.hsus]}" -v f="${R[haproxy.$k.hsus]}" \
			'BEGIN { printf "\n%s: gproxy/HAProxy RPS %.2f, handshakes/s %.2f, CPU per handshake %.2f\n", k, a / b, c / d, e / f }'
	done
} | tee "$RUN/tls.md"
