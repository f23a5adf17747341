# summary.awk: medians per (benchmark, metric, server) and the markdown
# comparison table.
#
# Inputs (in this order):
#   1. the row spec, one row per line:  label|bench|metric|unit|dir|target
#      dir is "ge" (higher is better: ratio must be >= target), "le" (lower is
#      better: ratio must be <= target) or "-" (no target, shown for context).
#   2. the raw results, tab separated:  round server bench metric value
#      value is a number, NA (the run failed) or UNAVAILABLE (the server
#      lacks the feature, e.g. Watch: shown as "not available yet").
#
# Usage: awk -F'|' -f summary.awk SPEC FS='\t' RESULTS
# The ratio is always metastore/etcd; the median of an even count is the mean
# of the two middle values. NA values are left out of the median; a row with
# no value for a server shows "n/a" plus the failure marker from the raw data.
FNR == NR {
	if ($0 ~ /^#/ || $0 == "") next
	nrows++
	label[nrows] = $1; bench[nrows] = $2; metric[nrows] = $3
	unit[nrows] = $4; dir[nrows] = $5; target[nrows] = $6
	next
}
{
	k = $3 SUBSEP $4 SUBSEP $2
	if ($5 == "NA") { na[k]++; next }
	if ($5 == "UNAVAILABLE") { unav[k]++; next }
	cnt[k]++
	vals[k, cnt[k]] = $5 + 0
}
function median(k,    n, i, j, t, a) {
	n = cnt[k]
	if (n == 0) return "NA"
	for (i = 1; i <= n; i++) a[i] = vals[k, i]
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt(v, k) {
	if (v == "NA") return "n/a"
	if (v >= 100) return sprintf("%.0f", v)
	if (v >= 10) return sprintf("%.1f", v)
	return sprintf("%.3g", v)
}
END {
	print "| Benchmark | Metric | metastore (median) | etcd (median) | ratio metastore/etcd | Target | Met? |"
	print "|---|---|---|---|---|---|---|"
	for (r = 1; r <= nrows; r++) {
		km = bench[r] SUBSEP metric[r] SUBSEP "metastore"
		ke = bench[r] SUBSEP metric[r] SUBSEP "etcd"
		m = median(km); e = median(ke)
		ratio = "n/a"; met = "-"
		if (m != "NA" && e != "NA" && e > 0) ratio = sprintf("%.2f", m / e)
		tgt = "-"
		if (dir[r] == "ge") tgt = "≥ " target[r] "×"
		if (dir[r] == "le") tgt = "≤ " target[r] "×"
		if (dir[r] != "-") {
			if (ratio == "n/a") met = "not available yet"
			else if (dir[r] == "ge") met = (m / e >= target[r]) ? "yes" : "**no**"
			else met = (m / e <= target[r]) ? "yes" : "**no**"
		}
		ms = fmt(m); es = fmt(e)
		if (m != "NA" && (km in na)) ms = ms " (" na[km] " failed)"
		if (e != "NA" && (ke in na)) es = es " (" na[ke] " failed)"
		if (m == "NA" && (km in na)) ms = "n/a (failed)"
		if (e == "NA" && (ke in na)) es = "n/a (failed)"
		if (m == "NA" && (km in unav)) ms = "not available yet"
		if (e == "NA" && (ke in unav)) es = "not available yet"
		printf "| %s | %s (%s) | %s | %s | %s | %s | %s |\n", label[r], metric[r], unit[r], ms, es, ratio, tgt, met
	}
}
