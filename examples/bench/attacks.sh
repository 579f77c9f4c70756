#!/usr/bin/env bash
# make attacks: issue 15's attacks (examples/h2attack) against the gproxy
# binary, nginx and HAProxy, with the same backend and a good grpc-go
# client calling meanwhile (proxy/e2e TestAttacks). Call counts on a shared
# machine move with its load by minutes, so the proxies take turns: each
# attack runs against the three in a row, the order rotating, and the whole
# is repeated ROUNDS times. Prints every row, then per attack and proxy the
# median good calls with their range and the highest peak RSS and anonymous
# memory. A benchmark: nothing fails on a slow number (the tests' own
# assertions still apply to gproxy).
#
#   examples/bench/attacks.sh
#   ROUNDS=1 ATTACKS="settings ping" PROXIES="gproxy-process haproxy" examples/bench/attacks.sh
set -Eeuo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
read -r -a proxies <<<"${PROXIES:-gproxy-process nginx haproxy}"
read -r -a attacks <<<"${ATTACKS:-settings ping zero-window idle rapid-reset hpack-bomb continuation}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/e2e.test" ./proxy/e2e

n=${#proxies[@]}
for ((r = 0; r < ROUNDS; r++)); do
	for ((a = 0; a < ${#attacks[@]}; a++)); do
		for ((i = 0; i < n; i++)); do
			p=${proxies[$(((r + a + i) % n))]}
			(cd proxy/e2e && timeout -k 5 120 "$tmp/e2e.test" -test.run "TestAttacks/^${attacks[a]}\$" \
				-test.v -e2e.proxy="$p" 2>&1) | grep -o 'ATTACK-ROW.*' | tee -a "$tmp/rows" || true
		done
	done
done

echo
echo "attack | proxy | good calls: median (lowest-highest) of $ROUNDS, ok/made over all | peak RSS | peak anon"
awk -F'|' '
{
	k = $2 "|" $3; gsub(/ /, "", k)
	split($4, g, "/"); ok = g[1] + 0; made = g[2] + 0
	n[k]++; v[k, n[k]] = ok; sok[k] += ok; smade[k] += made
	rss = $5 + 0; anon = $6 + 0
	if (rss > maxrss[k]) maxrss[k] = rss
	if (anon > maxanon[k]) maxanon[k] = anon
	if (!(k in seen)) { seen[k] = 1; order[++keys] = k }
}
END {
	for (j = 1; j <= keys; j++) {
		k = order[j]; m = n[k]
		for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++)
			if (v[k, b] < v[k, a]) { t = v[k, a]; v[k, a] = v[k, b]; v[k, b] = t }
		med = m % 2 ? v[k, (m + 1) / 2] : int((v[k, m / 2] + v[k, m / 2 + 1]) / 2)
		split(k, kk, "|")
		printf "%s | %s | %d (%d-%d), %d/%d | %d MiB | %.1f MiB\n", kk[1], kk[2], med, v[k, 1], v[k, m], sok[k], smade[k], maxrss[k], maxanon[k]
	}
}' "$tmp/rows" | sort -t'|' -k1,1 -s
