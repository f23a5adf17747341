// Package logutil builds the server's zap logger from etcd's logging flags
// (--logger, --log-level, --log-format, --log-outputs), rotating the log
// file with lumberjack under --enable-log-rotation as etcd does.
//
// The encoder settings copy etcd's (field names ts/level/caller/msg, the same
// timestamp layout, sampling) because operators' log pipelines and etcd's e2e
// framework read these lines; every line also carries the member name in a
// "name" field so logs of several members can be told apart.
package logutil
