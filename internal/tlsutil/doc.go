// Package tlsutil builds the TLS configurations etcd's flags describe for
// the client and peer listeners (--cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth, --auto-tls, --cipher-suites,
// --tls-min-version, --tls-max-version and their --peer- twins), and the
// matching client side for connections the member makes itself. It also
// enforces the flags that restrict who may connect: --client-crl-file and
// --peer-crl-file (re-read for every new connection, so a revocation needs
// no restart), --peer-cert-allowed-cn, --peer-cert-allowed-hostname and
// --client-cert-allowed-hostname, inside the handshake, so every listener
// built on these configs refuses the same connections etcd refuses.
package tlsutil
