#!/usr/bin/env bash
# ratios.sh [RUN_DIR...]: gproxy's figures over HAProxy's and nginx's in
# each bench run (default: every run kept in bench-out/), and the median of
# each ratio over those runs. Runs are noisy on a shared machine: this is
# the figure to quote, beside the runs' tables.
#
#   examples/bench/ratios.sh bench-out/20261125-0847*/ bench-out/20261125-0855*/
set -euo pipefail
cd "$(dirname "$0")/../.."
(($#)) || set -- bench-out/*/
files=()
for d in "$@"; do
	[[ -f ${d%/}/results.tsv ]] && files+=("${d%/}/results.tsv")
done
((${#files[@]})) || {
	echo "ratios.sh: no results.tsv found" >&2
	exit 1
}
awk -F'\t' '
FNR == 1 { run = FILENAME; sub(/\/results\.tsv$/, "", run); sub(/.*\//, "", run); runs[++nr] = run }
{ v[run, $1] = $2 }
function ratio(run, other, key,   a, b) {
	a = v[run, "gproxy." key]; b = v[run, other "." key]
	return (a + 0 > 0 && b + 0 > 0) ? a / b : ""
}
function median(xs, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && xs[j - 1] > xs[j]; j--) { t = xs[j]; xs[j] = xs[j - 1]; xs[j - 1] = t }
	return n % 2 ? xs[(n + 1) / 2] : (xs[n / 2] + xs[n / 2 + 1]) / 2
}
END {
	ncol = split("haproxy:4x32.rps haproxy:64x100.rps haproxy:p99 haproxy:down haproxy:up nginx:4x32.rps nginx:64x100.rps nginx:down nginx:up", cols, " ")
	line = "| run |"; sep = "|---|"
	for (c = 1; c <= ncol; c++) { split(cols[c], p, ":"); line = line " gproxy/" p[1] " " p[2] " |"; sep = sep "--:|" }
	print line; print sep
	for (r = 1; r <= nr; r++) {
		line = "| " runs[r] " |"
		for (c = 1; c <= ncol; c++) {
			split(cols[c], p, ":"); x = ratio(runs[r], p[1], p[2])
			if (x != "") { got[c, ++cnt[c]] = x; line = line sprintf(" %.2f |", x) } else line = line " - |"
		}
		print line
	}
	line = "| median |"
	for (c = 1; c <= ncol; c++) {
		if (!cnt[c]) { line = line " - |"; continue }
		delete xs; for (i = 1; i <= cnt[c]; i++) xs[i] = got[c, i]
		line = line sprintf(" %.2f |", median(xs, cnt[c]))
	}
	print line
}' "${files[@]}"
