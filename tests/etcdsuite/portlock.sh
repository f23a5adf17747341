# Sourced by tests/etcdsuite/run.sh and tests/etcdrobustness/run.sh.
# etcd's e2e framework binds fixed ports (localhost:20000 and up): two runs of
# it on one machine would take each other's ports ("address already in use"),
# so a run waits here, on one lock file for both scripts, while another holds
# them. The lock is fd 9, released when the script exits.
etcd_ports_lock() { # etcd_ports_lock NAME: NAME prefixes the waiting message
	command -v flock >/dev/null || return 0
	exec 9>"${TMPDIR:-/tmp}/metastore-etcdsuite.lock"
	if ! flock -n 9; then
		echo "$1: another run of etcd's e2e framework holds its ports; waiting for it" >&2
		flock 9
	fi
}
