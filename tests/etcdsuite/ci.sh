#!/usr/bin/env bash
# Runs the cases of etcd v3.7.3's client test suite that metastore passes
# (docs/compatibility.md keeps this list and the reasons for the rest), and
# fails if any of them fails. A test added here must pass; a test removed
# from here needs a line in docs/compatibility.md saying why.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Single-member cases without TLS (the suite's "NoTLS" cluster) and the
# single-member tests that have no cluster subtests.
NOTLS=(
	TestKVPut TestKVGet TestKVGetStream TestKVDelete
	TestTxnSucc TestTxnFail
	TestLeaseGrantTimeToLive TestLeaseGrantAndList TestLeaseGrantTimeToLiveExpired
	TestLeaseGrantKeepAliveOnce TestLeaseGrantRevoke
	TestStatus TestMemberList TestWaitLeader
	TestWatch TestVerifyHashKVAfterCompactAndDefrag
	TestAlarm TestAlarmlistOnMemberRestart
)
# Tests that always run a three-member cluster without TLS (their subtests
# are not cluster kinds, so they run whole).
THREE=(
	TestCompact TestEndpointStatus TestEndpointHashKV TestEndpointHealth
	TestDefragOnline TestKVGetNoQuorum
)
IFS='|'
notls="^(${NOTLS[*]})\$/^NoTLS\$"
three="^(${THREE[*]})\$"
unset IFS
"$ROOT/tests/etcdsuite/run.sh" "$notls"
"$ROOT/tests/etcdsuite/run.sh" "$three"
