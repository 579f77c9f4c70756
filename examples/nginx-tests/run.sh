#!/bin/sh
# Run nginx's own gRPC tests (nginx/nginx-tests, grpc*.t) against gproxy.
#
# usage: examples/nginx-tests/run.sh [NGINX_TESTS_DIR] [TEST.t ...]
#
# NGINX_TESTS_DIR is a checkout of https://github.com/nginx/nginx-tests
# (commit a551a2978b1e is the one the README's figures come from); without
# it, $NGINX_TESTS or /tmp/nginx-tests is used. The tests are read where
# they are; nothing from them is copied into this repository.
#
# The script builds gproxy, writes a wrapper that answers -V as an nginx
# built with the HTTP/2 and SSL modules would (the harness reads -V to
# decide which tests apply) and otherwise runs gproxy, and runs prove on
# the grpc*.t files (or the ones named) with TEST_NGINX_BINARY pointing at
# the wrapper. Exit status is prove's.
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
tests=${1:-${NGINX_TESTS:-/tmp/nginx-tests}}
[ $# -gt 0 ] && shift
if [ ! -f "$tests/lib/Test/Nginx.pm" ]; then
	echo "no nginx-tests checkout at $tests" >&2
	echo "get one: git clone https://github.com/nginx/nginx-tests $tests && git -C $tests checkout a551a2978b1e" >&2
	exit 2
fi

work=$(mktemp -d /tmp/gproxy-nginx-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

(cd "$repo" && go build -o "$work/gproxy" ./cmd/gproxy)

cat > "$work/nginx" <<WRAP
#!/bin/sh
# nginx-tests asks the binary for its version and configure arguments.
if [ "\${1:-}" = "-V" ]; then
	echo "nginx version: nginx/1.22.1 (gproxy)" >&2
	echo "built with OpenSSL 3.0.0" >&2
	echo "TLS SNI support enabled" >&2
	echo "configure arguments: --with-http_v2_module --with-http_ssl_module" >&2
	exit 0
fi
exec "$work/gproxy" "\$@"
WRAP
chmod +x "$work/nginx"

cd "$tests"
if [ $# -eq 0 ]; then
	set -- grpc*.t
fi
# Every test starts its own server and stops it; the whole run is cut at
# 10 minutes so it is bounded. The points are the TAP lines: "ok" passes,
# "not ok" fails, and a file that dies early loses what its plan had left.
set +e
TEST_NGINX_BINARY="$work/nginx" timeout -k 5 600 prove -v ${PROVE_FLAGS:-} "$@" >"$work/tap" 2>&1
rc=$?
set -e
cat "$work/tap"
awk '
	/^[a-z_0-9]+\.t \.+/ { file = $1; sub(/ .*/, "", file) }
	/^1\.\.[0-9]+/ { split($0, a, "\\.\\."); plan[file] = a[2] + 0 }
	/^ok / { pass[file]++ }
	/^not ok / { fail[file]++ }
	END {
		for (f in plan) { printf "%-28s %3d of %3d\n", f, pass[f], plan[f]; tp += pass[f]; tt += plan[f] }
		printf "%-28s %3d of %3d points pass\n", "total", tp, tt
	}' "$work/tap" | sort
exit $rc
