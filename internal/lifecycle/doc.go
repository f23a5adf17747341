// Package lifecycle is the process-level half of the reliability layer:
//
//   - Shutdown runs registered hooks in four ordered phases (stop accepting,
//     drain, persist, close) under one overall timeout, so a SIGTERM ends with
//     state persisted and resources closed instead of an abrupt exit.
//   - Supervisor starts named goroutines that cannot take the process down:
//     panics are recovered, logged with their stack and counted, and critical
//     loops can be restarted with backoff up to a limit before the failure is
//     reported as fatal.
//   - Health turns Checker results into the gRPC health protocol
//     (grpc.health.v1, including Watch) and into results for HTTP probes;
//     Suspend/Resume hold it at NOT_SERVING for an operation such as a
//     defragmentation (etcd's StopGRPCServiceOnDefrag).
//
// Nothing here is global: every manager is a value the server owns.
package lifecycle
