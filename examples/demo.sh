#!/usr/bin/env bash
# gproxy demo: one client connection, 1,000 unary calls, two backends.
#
# Builds gproxy, starts two gRPC backends on 127.0.0.1:50051 and :50052,
# starts gproxy with examples/article/nginx.conf (only the root-owned paths
# -- pid and logs -- moved to a temp dir; `daemon off;` given with -g), sends
# the calls over ONE connection and prints how many each backend served.
# Everything it starts is stopped on exit. Bounded in time.
#
#   examples/demo.sh                 # gproxy
#   PROXY=nginx examples/demo.sh     # the same demo through nginx, to compare
#   N=5000 examples/demo.sh
set -euo pipefail

cd "$(dirname "$0")/.."
PROXY=${PROXY:-gproxy}
N=${N:-1000}
CONF=examples/article/nginx.conf
LISTEN=127.0.0.1:30051
BACKENDS=(127.0.0.1:50051 127.0.0.1:50052)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gproxy-demo.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ $rc -ne 0 && -s $tmp/error.log ]]; then
		echo "--- $PROXY error log:" >&2
		tail -n 20 "$tmp/error.log" >&2
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port HOST:PORT SECONDS: true once something accepts on HOST:PORT.
wait_port() {
	local host=${1%:*} port=${1##*:} deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "demo: nothing listening on $1 after $2s" >&2
	return 1
}

# port_free HOST:PORT: fail early and clearly when a port is taken.
port_free() {
	if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then
		echo "demo: $1 is already in use; stop whatever listens there" >&2
		exit 1
	fi
}
for a in "${BACKENDS[@]}" "$LISTEN"; do port_free "$a"; done

echo "building..."
mkdir -p bin
go build -o bin/backend ./examples/backend
go build -o bin/democlient ./examples/democlient

# The article's config, with only the paths that need root moved to $tmp.
sed -e "s#/var/run/nginx.pid#$tmp/proxy.pid#" \
	-e "s#/var/log/nginx/#$tmp/#g" \
	"$CONF" >"$tmp/nginx.conf"

i=0
for a in "${BACKENDS[@]}"; do
	i=$((i + 1))
	bin/backend -addr "$a" -name "backend-$i ($a)" 2>"$tmp/backend-$i.log" &
	pids+=($!)
done
for a in "${BACKENDS[@]}"; do wait_port "$a" 10; done

case $PROXY in
gproxy)
	go build -o bin/gproxy ./cmd/gproxy
	bin/gproxy -c "$tmp/nginx.conf" -g 'daemon off;' 2>>"$tmp/error.log" &
	;;
nginx)
	# For comparison only: one nginx process in the foreground.
	nginx -p "$tmp/" -e "$tmp/error.log" -c "$tmp/nginx.conf" \
		-g "daemon off; master_process off;" 2>>"$tmp/error.log" &
	;;
*)
	echo "demo: PROXY must be gproxy or nginx" >&2
	exit 2
	;;
esac
pids+=($!)
wait_port "$LISTEN" 10

echo "$PROXY is running $CONF; sending $N calls over one connection:"
timeout 60 bin/democlient -addr "$LISTEN" -n "$N"

# The article's access_log, in its "main" format: one line per call, written
# by gproxy within 100 ms (nginx writes each at once).
sleep 0.3
if [[ -s $tmp/access.log ]]; then
	echo "$PROXY wrote $(wc -l <"$tmp/access.log") lines to the article's access_log; the last one:"
	tail -n 1 "$tmp/access.log" | sed 's/^/  /'
fi
