#!/usr/bin/env bash
# make bench: gproxy against nginx and HAProxy (and no proxy at all: direct
# to one backend, direct2 to both) on loopback: same two gRPC backends, same
# loads, one core for each proxy.
# What is measured and how: examples/bench/README.md. A benchmark, not a
# test: nothing fails on a slow number, and failed calls are counted in the
# table; a process that fails to start or dies is named with the end of its
# log, and then the exit status is 1.
#
#   examples/bench/bench.sh
#   PROXIES="gproxy haproxy" BENCH_PORT=24000 examples/bench/bench.sh
#   LOADS="streaming down,streaming up" PROXIES="gproxy haproxy" examples/bench/bench.sh
set -Eeuo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD

PROXIES=${PROXIES:-direct direct2 gproxy gproxy-log nginx haproxy}
BENCH_PORT=${BENCH_PORT:-20000} # first port tried; below the ephemeral range
PROXY_CPU=${PROXY_CPU:-1}       # the proxy runs alone on this core
LOAD_CPU=${LOAD_CPU:-0}         # h2load, benchtool and both backends share this one
CPU_S=${CPU_S:-3}               # proxy CPU seconds each unary load aims at,
CPU_MIN=${CPU_MIN:-2}           # and must reach unless it ran MAX_S,
MIN_S=${MIN_S:-3}               # taking at least MIN_S
MAX_S=${MAX_S:-12}              # and at most MAX_S seconds
RATE=${RATE:-5000}              # calls/s of the latency load,
RATE_C=${RATE_C:-10}            # spread over this many connections,
LAT_S=${LAT_S:-5}               # measured for this long after 1 s of warm-up
STREAM_S=${STREAM_S:-4}         # seconds of 1 MiB messages in each direction
IDLE_N=${IDLE_N:-1000}          # idle connections for the memory figure
BUDGET=${BUDGET:-230}           # seconds; later steps are skipped (make bench kills at 300)
OUT=${OUT:-$ROOT/bench-out}
RPC=/grpc.testing.TestService/UnaryCall
TICK=$(getconf CLK_TCK)

STAMP=$(date -u +%Y%m%d-%H%M%S)
RUN=$OUT/$STAMP # configs, process logs and raw outputs of this run
mkdir -p "$RUN"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gproxy-bench.XXXXXX") # binaries

say() { echo "bench: $*" | tee -a "$RUN/bench.log" >&2; }

# --- processes --------------------------------------------------------------
# Every server runs in its own session (setsid), so that stopping it stops
# its whole process group, and nothing outlives the script.

declare -A PID=() LOGF=()

# spawn NAME LOGFILE CMD...: starts CMD in the background in its own session.
spawn() {
	local name=$1 logf=$2
	shift 2
	setsid "$@" >"$logf" 2>&1 </dev/null &
	PID[$name]=$!
	LOGF[$name]=$logf
}

# alive NAME: whether NAME's process runs (zombies count as dead).
alive() {
	local pid=${PID[$1]:-}
	[[ -n $pid && -r /proc/$pid/stat ]] || return 1
	[[ $(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

# blame NAME WHAT: says that NAME failed and shows the end of its log.
blame() {
	{
		echo "bench: $1 $2"
		echo "  last lines of ${LOGF[$1]}:"
		tail -n 15 "${LOGF[$1]}" 2>/dev/null | sed 's/^/    | /'
	} | tee -a "$RUN/bench.log" >&2
}

# ready NAME ADDR: waits until NAME answers gRPC calls on ADDR (for a proxy,
# that means through to the backends). Returns 1, having said why, if the
# process exits or does not answer within 15 s.
ready() {
	local name=$1 addr=$2 deadline=$((SECONDS + 15))
	while :; do
		if ! alive "$name"; then
			local rc=0
			wait "${PID[$name]}" 2>/dev/null || rc=$?
			blame "$name" "exited (status $rc) before answering on $addr"
			return 1
		fi
		"$BT" ping -addr "$addr" -n 4 -timeout 1s 2>"$RUN/ping.err" && return 0
		if ((SECONDS >= deadline)); then
			blame "$name" "did not answer gRPC calls on $addr within 15 s: $(tail -n1 "$RUN/ping.err")"
			return 1
		fi
		sleep 0.1
	done
}

# stop NAME: TERM to its process group, KILL after 5 s, and reap it.
stop() {
	local pid=${PID[$1]:-}
	[[ -n $pid ]] || return 0
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for _ in {1..50}; do
		alive "$1" || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "PID[$1]"
}

cleanup() {
	local rc=$?
	for name in "${!PID[@]}"; do stop "$name"; done
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'say "stopped by a failed command at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- set-up -----------------------------------------------------------------

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "building into $tmp (run files: $RUN)"
go build -o "$tmp/backend" ./examples/backend
go build -o "$tmp/benchtool" ./examples/bench/benchtool
BT=$tmp/benchtool
if [[ " $PROXIES " == *" gproxy "* || " $PROXIES " == *" gproxy-log "* ]]; then
	if [[ -n ${GPROXY:-} ]]; then
		cp "$GPROXY" "$tmp/gproxy"
	elif ! go build -o "$tmp/gproxy" ./cmd/gproxy 2>"$RUN/gproxy-build.log"; then
		say "gproxy does not build (the others are measured all the same):"
		head -n 5 "$RUN/gproxy-build.log" >&2
	fi
fi
"$BT" msg -o "$tmp/unary.bin"

# Ports: two backends, then one per proxy, each checked free now.
read -r -a ports < <("$BT" ports -base "$BENCH_PORT" -n 6) || {
	say "no free ports (BENCH_PORT=$BENCH_PORT)"
	exit 1
}
B1=127.0.0.1:${ports[0]}
B2=127.0.0.1:${ports[1]}
declare -A ADDR=([direct]=$B1 [gproxy]=127.0.0.1:${ports[2]} [nginx]=127.0.0.1:${ports[3]} [haproxy]=127.0.0.1:${ports[4]} [gproxy-log]=127.0.0.1:${ports[5]})
say "ports: backends ${ports[0]} ${ports[1]}, gproxy ${ports[2]}, nginx ${ports[3]}, haproxy ${ports[4]}, gproxy-log ${ports[5]}"

for i in 1 2; do
	b=B$i
	spawn "backend-$i" "$RUN/backend-$i.log" taskset -c "$LOAD_CPU" env GOMAXPROCS=1 "$tmp/backend" -addr "${!b}" -name "b$i"
done
ready backend-1 "$B1" || exit 1
ready backend-2 "$B2" || exit 1

# The same upstream block and http settings for nginx and gproxy: keepalive
# to the upstreams, keepalive_requests raised (nginx otherwise closes client
# connections every 1000 calls), no limit on streamed request bodies.
http_common="access_log off;
    keepalive_requests 1000000;
    client_max_body_size 0;
    upstream grpc_servers {
        server $B1;
        server $B2;
        keepalive 512;
        keepalive_requests 1000000;
    }"
cat >"$RUN/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $RUN/nginx.pid;
error_log $RUN/nginx-error.log warn;
events { worker_connections 16000; }
http {
    $http_common
    client_body_temp_path $RUN/nginx-tmp/body;
    proxy_temp_path $RUN/nginx-tmp/proxy;
    fastcgi_temp_path $RUN/nginx-tmp/fastcgi;
    uwsgi_temp_path $RUN/nginx-tmp/uwsgi;
    scgi_temp_path $RUN/nginx-tmp/scgi;
    server {
        listen ${ADDR[nginx]} http2;
        location / { grpc_pass grpc://grpc_servers; }
    }
}
CONF
mkdir -p "$RUN/nginx-tmp"
cat >"$RUN/gproxy.conf" <<CONF
daemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $RUN/gproxy.pid;
error_log $RUN/gproxy-error.log warn;
events { worker_connections 16000; }
http {
    $http_common
    server {
        listen ${ADDR[gproxy]} http2;
        location / { grpc_pass grpc://grpc_servers; }
    }
}
CONF
# gproxy-log: the same with an access log in nginx's combined format (the
# default buffering), for the cost of access logging.
sed -e "s|listen ${ADDR[gproxy]} http2;|listen ${ADDR[gproxy-log]} http2;\n        access_log $RUN/gproxy-access.log combined;|" \
	-e "s|$RUN/gproxy.pid|$RUN/gproxy-log.pid|" -e "s|$RUN/gproxy-error.log|$RUN/gproxy-log-error.log|" \
	"$RUN/gproxy.conf" >"$RUN/gproxy-log.conf"
cat >"$RUN/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn $(( ($(ulimit -n) - 100) / 2 ))
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend fe
    bind ${ADDR[haproxy]} proto h2
    default_backend be
backend be
    balance roundrobin
    server b1 $B1 proto h2
    server b2 $B2 proto h2
CONF

# noproxy NAME: whether NAME is a baseline without a proxy. direct drives
# backend 1 alone; direct2 drives both at once, as the proxies do (unary
# loads only: see h2run).
noproxy() { [[ $1 == direct || $1 == direct2 ]]; }

# start_proxy NAME: starts it alone on its core and waits until it answers.
start_proxy() {
	local on=(taskset -c "$PROXY_CPU")
	if [[ $1 == gproxy* && ! -x $tmp/gproxy ]]; then
		R[$1.note]="did not build"
		return 1
	fi
	case $1 in
	direct | direct2) return 0 ;;
	gproxy) spawn gproxy "$RUN/gproxy.log" "${on[@]}" env GOMAXPROCS=1 "$tmp/gproxy" -c "$RUN/gproxy.conf" ;;
	gproxy-log) spawn gproxy-log "$RUN/gproxy-log.log" "${on[@]}" env GOMAXPROCS=1 "$tmp/gproxy" -c "$RUN/gproxy-log.conf" ;;
	nginx) spawn nginx "$RUN/nginx.log" "${on[@]}" nginx -p "$RUN/" -e "$RUN/nginx-error.log" -c "$RUN/nginx.conf" ;;
	haproxy) spawn haproxy "$RUN/haproxy.log" "${on[@]}" haproxy -db -f "$RUN/haproxy.cfg" ;;
	*)
		say "unknown proxy $1 (want direct, direct2, gproxy, nginx or haproxy)"
		return 1
		;;
	esac
	ready "$1" "${ADDR[$1]}"
}

# --- measurements -----------------------------------------------------------
# R[proxy.key] holds every figure; "-" where there is none.

declare -A R=()

# size_run RPS SECONDS TICKS C M: how many calls make a run that costs the
# proxy CPU_S seconds of CPU, judged from a run of SECONDS at RPS that cost
# it TICKS, bounded to MIN_S..MAX_S seconds. A run that finished nothing
# (nginx opens one upstream connection per stream, 6,400 at 64x100, and may
# answer nothing in its first second) gives a guess of 20 calls per stream.
size_run() {
	awk -v rps="$1" -v secs="$2" -v dt="$3" -v c="$4" -v m="$5" -v tick="$TICK" -v want="$CPU_S" -v lo="$MIN_S" -v hi="$MAX_S" 'BEGIN {
		if (rps <= 0 || secs <= 0) { printf "%d", c * m * 20; exit }
		busy = dt / tick / secs # proxy cores busy; 0 without a proxy
		s = busy > 0 ? want / busy : lo
		s = s < lo ? lo : s > hi ? hi : s
		n = rps * s
		printf "%d", n < c ? c : n }'
}

# ticks NAME: utime+stime of NAME's process in clock ticks (0 without a proxy).
ticks() {
	noproxy "$1" && { echo 0; return; }
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${PID[$1]}/stat"
}

# core_ticks N: busy and total ticks of core N.
core_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

# h2run NAME OUTFILE C M RUN-ARGS...: one bounded h2load run of unary calls
# against NAME, C connections x M streams, RUN-ARGS being -D SECONDS or
# -n CALLS; prints "OK BAD RPS SECONDS PROXY_TICKS LOAD_CORE_BUSY%".
# The last tells which side limited the run: when the load core is near
# 100% and the proxy's is not, the RPS says more about the proxy's latency
# and what its upstream traffic costs the backends than about its capacity.
# direct2 is two h2load at the same time, one per backend, each with half
# the connections and calls (OUTFILE.b1, OUTFILE.b2): the proxies' load
# without the proxy. Its calls are summed, and its RPS is those over the
# longer run's time.
h2run() {
	local name=$1 out=$2 c=$3 m=$4 t0 t1 l0 lt0 l1 lt1 i
	shift 4
	local -a run=("$@") targets=() outs=() pids=()
	if [[ $name == direct2 ]]; then
		targets=("$B1" "$B2") outs=("$out.b1" "$out.b2")
		c=$((c / 2))
		[[ ${run[0]} == -n ]] && run[1]=$((run[1] / 2))
	else
		targets=("${ADDR[$name]}") outs=("$out")
	fi
	t0=$(ticks "$name")
	read -r l0 lt0 < <(core_ticks "$LOAD_CPU")
	for i in "${!targets[@]}"; do
		timeout $((MAX_S + 30)) taskset -c "$LOAD_CPU" h2load -c "$c" -m "$m" "${run[@]}" \
			-d "$tmp/unary.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
			"http://${targets[i]}$RPC" >"${outs[i]}" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do wait "${pids[i]}" || true; done
	t1=$(ticks "$name")
	read -r l1 lt1 < <(core_ticks "$LOAD_CPU")
	awk -v dt=$((t1 - t0)) -v lb=$((l1 - l0)) -v lt=$((lt1 - lt0)) '
		/^finished in/ {
			t = $3; sub(/,$/, "", t)
			if (t ~ /ms$/) { sub(/ms$/, "", t); t /= 1000 } else sub(/s$/, "", t)
			if (t + 0 > secs) secs = t + 0
			rps += $4
		}
		/^requests:/ { total += $2 }
		/^status codes:/ { ok += $3 }
		END {
			if (FNR < NR) rps = secs > 0 ? ok / secs : 0 # several runs: calls over the longer one
			printf "%d %d %.0f %.3f %d %.0f\n", ok, total - ok, rps, secs, dt, (lt > 0 ? lb / lt * 100 : 0) }' "${outs[@]}"
}

# unary NAME C M: RPS and proxy CPU per call with C connections x M streams.
# A 1 s probe (which also warms up) sizes the measured run: enough calls for
# CPU_S seconds of proxy CPU at the probe's pace, within MIN_S..MAX_S
# seconds. The measured run is counted (-n), so every call started is
# finished inside the CPU window. A run that used less than CPU_MIN seconds
# of proxy CPU (the probe misjudged) is sized again from itself and rerun,
# up to three runs; a figure still short of it is starred.
unary() {
	local p=$1 c=$2 m=$3 k=$1.$2x$3 ok bad rps secs dt lc n attempt enough=1
	read -r ok bad rps secs dt lc < <(h2run "$p" "$RUN/h2load-$p-${c}x$m-probe.txt" "$c" "$m" -D 1)
	n=$(size_run "$rps" "$secs" "$dt" "$c" "$m")
	for attempt in 1 2 3; do
		read -r ok bad rps secs dt lc < <(h2run "$p" "$RUN/h2load-$p-${c}x$m.txt" "$c" "$m" -n "$n")
		noproxy "$p" && break
		enough=$(awk -v dt="$dt" -v tick="$TICK" -v min="$CPU_MIN" -v s="$secs" -v hi="$MAX_S" \
			'BEGIN { print (dt / tick >= min || s >= hi) ? 1 : 0 }')
		((enough)) && break
		say "$p ${c}x$m: $ok calls took only $(awk -v dt="$dt" -v tick="$TICK" 'BEGIN { print dt / tick }') s of proxy CPU in ${secs}s"
		n=$(size_run "$rps" "$secs" "$dt" "$c" "$m")
	done
	R[$k.rps]=$rps R[$k.n]=$ok R[$k.bad]=$bad R[$k.secs]=$secs R[$k.loadcore]=$lc%
	if noproxy "$p" || [[ $ok == 0 ]]; then
		R[$k.us]=- R[$k.cpu]=- R[$k.proxycore]=-
	else
		R[$k.us]=$(awk -v dt="$dt" -v tick="$TICK" -v ok="$ok" 'BEGIN { printf "%.1f", dt / tick / ok * 1e6 }')
		R[$k.cpu]=$(awk -v dt="$dt" -v tick="$TICK" 'BEGIN { printf "%.2f", dt / tick }')
		R[$k.proxycore]=$(awk -v dt="$dt" -v tick="$TICK" -v s="$secs" 'BEGIN { printf "%.0f%%", (s > 0 ? dt / tick / s * 100 : 0) }')
		((enough)) || R[$k.us]="${R[$k.us]}*"
	fi
	say "$p ${c}x$m: $ok calls in ${secs}s, $rps/s, proxy CPU ${R[$k.cpu]} s, ${R[$k.us]} us/call, $bad failed; cores busy: proxy ${R[$k.proxycore]}, load $lc%"
}

# latency NAME: percentiles at a fixed RATE (benchtool rate: evenly spaced,
# open loop; see its doc comment for why not h2load --rps).
latency() {
	local p=$1 line t0 t1
	t0=$(ticks "$p")
	if line=$(timeout $((LAT_S + 30)) taskset -c "$LOAD_CPU" "$BT" rate -addr "${ADDR[$p]}" -d "$tmp/unary.bin" \
		-rps "$RATE" -c "$RATE_C" -t "${LAT_S}s" -warmup 1s 2>>"$RUN/bench.log"); then
		read -r "R[$p.p50]" "R[$p.p99]" "R[$p.p999]" "R[$p.rate]" "R[$p.latn]" "R[$p.latbad]" "R[$p.lag]" <<<"$line"
		# CPU per call at this rate, warm-up included in both counts: at
		# low concurrency a proxy batches less than under full load.
		t1=$(ticks "$p")
		noproxy "$p" || R[$p.latus]=$(awk -v dt=$((t1 - t0)) -v tick="$TICK" -v n="$RATE" -v s="$LAT_S" \
			'BEGIN { printf "%.1f", dt / tick / (n * (s + 1)) * 1e6 }')
		say "$p latency at $RATE/s: p50 ${R[$p.p50]} p99 ${R[$p.p99]} p99.9 ${R[$p.p999]} ms; ${R[$p.rate]}/s achieved, ${R[$p.latn]} calls, ${R[$p.latbad]} errors, scheduler lag p99 ${R[$p.lag]} ms, ${R[$p.latus]:--} us/call"
	else
		say "$p latency run failed (see $RUN/bench.log)"
		R[$p.latbad]=1
	fi
}

# streaming NAME DIR: MB/s of 1 MiB messages, 4 connections.
streaming() {
	local p=$1 dir=$2 line
	if line=$(timeout $((STREAM_S + 40)) taskset -c "$LOAD_CPU" "$BT" stream -addr "${ADDR[$p]}" -dir "$dir" -c 4 \
		-t "${STREAM_S}s" 2>>"$RUN/bench.log"); then
		R[$p.$dir]=${line%% *}
		say "$p stream $dir: $line (MB/s messages calls)"
	else
		say "$p stream $dir failed (see $RUN/bench.log)"
		R[$p.$dir.bad]=1
	fi
}

# idle_rss NAME: KiB of proxy RSS per idle HTTP/2 client connection.
idle_rss() {
	local p=$1 line
	noproxy "$p" && return 0
	if line=$(timeout 60 taskset -c "$LOAD_CPU" "$BT" idle -addr "${ADDR[$p]}" -pid "${PID[$p]}" -n "$IDLE_N" 2>>"$RUN/bench.log"); then
		R[$p.idle]=${line%% *}
		say "$p idle: $line (KiB/conn, RSS before, after)"
	else
		say "$p idle connections failed (see $RUN/bench.log)"
		R[$p.idle.bad]=1
	fi
}

# our_ticks: CPU ticks used so far by this script, everything it ran and
# waited for, and the servers still running.
our_ticks() {
	local t name
	t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$$/stat")
	for name in "${!PID[@]}"; do
		alive "$name" && t=$((t + $(ticks "$name")))
	done
	echo "$t"
}
# machine_ticks: busy and total CPU ticks of the whole machine.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

failed=()
declare -A DEAD=() OTHER_BUSY=() OTHER_ALL=()

# step NAME FUNCTION ARGS...: one measurement of one proxy. It charges the
# CPU that processes not ours used meanwhile to NAME's account (on a shared
# machine, the figure that says how far to trust the others), and takes NAME
# out of the run if its process died.
step() {
	local p=$1 o0 b0 t0 o1 b1 t1
	shift
	o0=$(our_ticks)
	read -r b0 t0 < <(machine_ticks)
	"$@"
	o1=$(our_ticks)
	read -r b1 t1 < <(machine_ticks)
	OTHER_BUSY[$p]=$((${OTHER_BUSY[$p]:-0} + (b1 - b0) - (o1 - o0)))
	OTHER_ALL[$p]=$((${OTHER_ALL[$p]:-0} + t1 - t0))
	if ! noproxy "$p" && ! alive "$p"; then
		blame "$p" "died during: $*"
		R[$p.note]="died during $1"
		DEAD[$p]=1
		failed+=("$p")
	fi
}

# All proxies run side by side (an idle one costs nothing) and take turns
# at each load, so that the figures compared were measured seconds apart
# rather than minutes: the machine's other load moves less in between.
# Idle memory is read first, while each process is fresh.
live=()
for p in $PROXIES; do
	if start_proxy "$p"; then
		live+=("$p")
		noproxy "$p" || step "$p" idle_rss "$p"
	else
		R[$p.note]=${R[$p.note]:-did not start}
		failed+=("$p")
	fi
done
IFS=, read -r -a loads <<<"${LOADS:-unary 4 32,unary 64 100,latency,streaming down,streaming up}"
for load in "${loads[@]}"; do
	read -r -a args <<<"$load"
	say "== $load"
	for p in "${live[@]}"; do
		[[ -z ${DEAD[$p]:-} ]] || continue
		[[ $p == direct2 && ${args[0]} != unary ]] && continue # unary loads only: for the rest, direct is the baseline
		if ((SECONDS > BUDGET)); then
			say "time budget of $BUDGET s spent: skipping $load for $p"
			R[$p.note]="${R[$p.note]:-skipped from $load: time budget}"
			continue
		fi
		step "$p" "${args[0]}" "$p" "${args[@]:1}"
	done
done
for p in "${live[@]}"; do
	R[$p.other]=$(awk -v b="${OTHER_BUSY[$p]:-0}" -v t="${OTHER_ALL[$p]:-0}" \
		'BEGIN { x = t > 0 ? b / t * 100 : 0; printf "%.0f%%", (x < 0 ? 0 : x) }')
done

# --- report -----------------------------------------------------------------

v() { echo "${R[$1]:--}"; }
errors() {
	local p=$1 n=0 k
	for k in "$p.4x32.bad" "$p.64x100.bad" "$p.latbad"; do n=$((n + ${R[$k]:-0})); done
	for k in "$p.down.bad" "$p.up.bad" "$p.idle.bad"; do [[ -n ${R[$k]:-} ]] && n=$((n + 1)); done
	echo "$n"
}
# ratio A B KEY: A's figure over B's, to 2 decimals.
ratio() { awk -v a="$(v "$1.$3")" -v b="$(v "$2.$3")" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
# check FIGURE OP LIMIT: "yes" or "NO" (or "-" without a figure).
check() { awk -v x="$1" -v op="$2" -v l="$3" 'BEGIN { if (x == "-" || x == "" || l == "-") { print "-"; exit }
	ok = op == ">=" ? x + 0 >= l + 0 : op == "<=" ? x + 0 <= l + 0 : x + 0 < l + 0; print ok ? "yes" : "NO" }'; }

gp_commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain -- cmd proxy upstream parser 2>/dev/null) ]] || gp_commit="$gp_commit+changes"
{
	echo "# gproxy bench $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -r)"
	echo "- proxy alone on core $PROXY_CPU (GOMAXPROCS=1 / worker_processes 1 / nbthread 1); h2load, benchtool and both backends on core $LOAD_CPU"
	echo "- gproxy $gp_commit, $(go version | cut -d' ' -f3), $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(h2load --version | head -1)"
	echo
	echo "| proxy | RPS 4x32 | us/call | RPS 64x100 | us/call | p50 ms | p99 ms | p99.9 ms | down MB/s | up MB/s | KiB/idle conn | errors |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	for p in $PROXIES; do
		note=${R[$p.note]:-}
		echo "| $p${note:+ ($note)} | $(v "$p.4x32.rps") | $(v "$p.4x32.us") | $(v "$p.64x100.rps") | $(v "$p.64x100.us") | $(v "$p.p50") | $(v "$p.p99") | $(v "$p.p999") | $(v "$p.down") | $(v "$p.up") | $(v "$p.idle") | $(errors "$p") |"
	done
	echo
	echo "No proxy: direct drives backend 1 alone; direct2 (unary loads only) runs two h2load at once, one per backend with half the connections, as the proxies spread their calls: calls summed, over the longer run's time."
	echo "Unary loads: h2load, a 1 s probe then a counted run sized for ~${CPU_S} s (at least ${CPU_MIN} s) of proxy CPU, ${MIN_S}-${MAX_S} s; us/call = proxy utime+stime / calls (* if under ${CPU_MIN} s of CPU: coarse)."
	echo "Latency: benchtool rate, $RATE calls/s evenly spaced over $RATE_C connections, ${LAT_S} s after 1 s of warm-up."
	echo "Streaming: 4 connections, 16 x 1 MiB messages per call, ${STREAM_S} s; down = server->client, up = client->server."
	echo "Proxies run side by side and take turns at each load. Other load: CPU used by processes outside this bench during the proxy's turns, as a share of all $(nproc) cores."
	echo
	echo "| proxy | load | calls | s | proxy CPU s | proxy core busy | load core busy |"
	echo "|---|---|--:|--:|--:|--:|--:|"
	for p in $PROXIES; do
		for l in 4x32 64x100; do
			echo "| $p | $l | $(v "$p.$l.n") | $(v "$p.$l.secs") | $(v "$p.$l.cpu") | $(v "$p.$l.proxycore") | $(v "$p.$l.loadcore") |"
		done
	done
	echo
	echo "| proxy | latency calls | achieved/s | proxy us/call at it | sched. lag p99 ms | other load |"
	echo "|---|--:|--:|--:|--:|--:|"
	for p in $PROXIES; do
		echo "| $p | $(v "$p.latn") | $(v "$p.rate") | $(v "$p.latus") | $(v "$p.lag") | $(v "$p.other") |"
	done
	if [[ " $PROXIES " == *" gproxy "* ]]; then
		echo
		echo "| gproxy / | RPS 4x32 | RPS 64x100 | down MB/s | up MB/s |"
		echo "|---|--:|--:|--:|--:|"
		for o in haproxy nginx; do
			[[ " $PROXIES " == *" $o "* ]] || continue
			echo "| $o | $(ratio gproxy $o 4x32.rps) | $(ratio gproxy $o 64x100.rps) | $(ratio gproxy $o down) | $(ratio gproxy $o up) |"
		done
		echo
		echo "Targets (issue #3):"
		if [[ " $PROXIES " == *" haproxy "* ]]; then
			echo "- RPS >= 1.2x HAProxy: 4x32 $(ratio gproxy haproxy 4x32.rps) $(check "$(ratio gproxy haproxy 4x32.rps)" '>=' 1.2), 64x100 $(ratio gproxy haproxy 64x100.rps) $(check "$(ratio gproxy haproxy 64x100.rps)" '>=' 1.2)"
		fi
		if [[ " $PROXIES " == *" nginx "* ]]; then
			echo "- RPS >= 3x nginx: 4x32 $(ratio gproxy nginx 4x32.rps) $(check "$(ratio gproxy nginx 4x32.rps)" '>=' 3), 64x100 $(ratio gproxy nginx 64x100.rps) $(check "$(ratio gproxy nginx 64x100.rps)" '>=' 3)"
		fi
		echo "- CPU/call <= 15 us: 4x32 $(v gproxy.4x32.us) $(check "$(v gproxy.4x32.us)" '<=' 15), 64x100 $(v gproxy.64x100.us) $(check "$(v gproxy.64x100.us)" '<=' 15)"
		if [[ " $PROXIES " == *" haproxy "* ]]; then
			echo "- p99 at $RATE/s <= HAProxy's: $(v gproxy.p99) vs $(v haproxy.p99) ms $(check "$(v gproxy.p99)" '<=' "$(v haproxy.p99)")"
		fi
		echo "- idle RSS < 10 KiB/conn: $(v gproxy.idle) $(check "$(v gproxy.idle)" '<' 10)"
	fi
	if [[ " $PROXIES " == *" gproxy "* && " $PROXIES " == *" gproxy-log "* ]]; then
		echo
		echo "Access log: gproxy with access_log (combined, to a file) against without: RPS 4x32 $(ratio gproxy-log gproxy 4x32.rps) ($(v gproxy-log.4x32.rps) vs $(v gproxy.4x32.rps)), 64x100 $(ratio gproxy-log gproxy 64x100.rps) ($(v gproxy-log.64x100.rps) vs $(v gproxy.64x100.rps)); us/call $(v gproxy-log.4x32.us) vs $(v gproxy.4x32.us)."
	fi
} >"$RUN/table.md"

# Every figure, one per line, for comparing runs.
for k in "${!R[@]}"; do printf '%s\t%s\n' "$k" "${R[$k]}"; done | sort >"$RUN/results.tsv"
cp "$RUN/table.md" "$OUT/table.md"
echo
cat "$RUN/table.md"
echo
echo "table: $OUT/table.md; run files: $RUN"
if ((${#failed[@]})); then
	say "failed: ${failed[*]}"
	exit 1
fi
