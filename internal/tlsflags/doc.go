// Package tlsflags turns etcd's TLS flags (--cert-file, --client-cert-auth,
// --auto-tls, --client-crl-file, --client-cert-allowed-hostname and their
// --peer- twins, --cipher-suites, --tls-min-version, ...) into the client
// and peer TLS configurations (internal/tlsutil builds them), logs each
// connection the CRL, allowed CN/hostname or peer SAN checks refuse with
// etcd's message, and gives the member's own client (lock and election
// services, JSON gateway) the TLS it dials its client port with.
package tlsflags
