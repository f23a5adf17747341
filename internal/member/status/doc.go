// Package status is what a member reports about itself, each answer read
// from the component that owns it: the header every response carries
// (cluster and member ID, raft term, store revision: rpc.HeaderSource),
// the Maintenance Status of one member (versions, storage sizes and
// quota, leader, raft indexes, learner flag, and the errors etcd lists:
// no leader, active alarms), and the answers of the HTTP health endpoints
// (httpapi.Probe). Each consumer receives only the small type it needs.
package status
