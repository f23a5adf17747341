# parse.awk: turns the text summary printed by etcd's benchmark tool
# (go.etcd.io/etcd/pkg/v3/report, tools/benchmark v3.6.8) into one line:
#   rps avg_ms p99_ms errors
# Missing values are printed as NA. The report format is:
#   Summary:
#     Total:        X.XXXX secs.
#     Average:      X.XXXX secs.
#     Requests/sec: X.XXXX
#   Latency distribution:
#     99% in X.XXXX secs.
#   Error distribution:
#     [N]  message
# watch-latency prints two reports ("Put summary:" then "Watch events
# summary:"); with section=watch only the second one is read, because the
# put side is rate-limited and says nothing about watch delivery.
#
# The watch command prints "Watch creation summary:" then "Watch events
# received summary:"; with section=events only the second one is read.
#
# Usage: awk -v section=all|watch|events -f parse.awk FILE
BEGIN {
	on = (section != "watch" && section != "events")
	rps = "NA"; avg = "NA"; p99 = "NA"; errs = 0; total = "NA"
}
/Watch events summary:/ { if (section == "watch") on = 1; next }
/Watch events received summary:/ { if (section == "events") on = 1; next }
/Put summary:/ { if (section == "watch") on = 0; next }
/Watch creation summary:/ { if (section == "events") on = 0; next }
!on { next }
/^[ \t]*Total:/ { total = $2 + 0 }
/^[ \t]*Average:/ { v = $2; avg = v * 1000 }
/^[ \t]*Requests\/sec:/ { rps = $2 + 0 }
/^[ \t]*99% in / { v = $3; p99 = v * 1000 }
/^[ \t]*\[[0-9]+\][ \t]/ {
	n = $1; gsub(/[][]/, "", n); errs += n
}
END {
	if (avg != "NA") avg = sprintf("%.3f", avg)
	if (p99 != "NA") p99 = sprintf("%.3f", p99)
	if (rps != "NA") rps = sprintf("%.1f", rps)
	print rps, avg, p99, errs, total
}
