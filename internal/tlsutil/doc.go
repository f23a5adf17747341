// Package tlsutil builds the TLS configurations etcd's flags describe for
// the client and peer listeners (--cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth, --auto-tls, --cipher-suites,
// --tls-min-version, --tls-max-version and their --peer- twins), and the
// matching client side for connections the member makes itself.
package tlsutil
