package tlsutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrIdentityRejected is etcd's error, word for word, for a verified
// certificate whose CN or hostname is not among the allowed ones.
var ErrIdentityRejected = errors.New("client certificate authentication failed")

// Rejection describes a connection the listener side refused because of the
// CRL, the allowed CN/hostname or the client SAN checks.
type Rejection struct {
	Remote     net.Addr
	ServerName string            // SNI the client sent
	Cert       *x509.Certificate // the presented leaf, nil if none
	Err        error
}

// identityCheck returns etcd's --peer-cert-allowed-cn /
// --*-cert-allowed-hostname check, or nil when neither list is set. It passes
// when the leaf of some verified chain has an allowed CN, or is valid for an
// allowed hostname (DNS SAN, IP SAN). Unverified certificates (no chains:
// RequireAnyClientCert, InsecureSkipVerify) never pass, as in etcd.
func identityCheck(cns, hostnames []string) func([][]byte, [][]*x509.Certificate) error {
	var ok func(*x509.Certificate) bool
	switch {
	case len(cns) > 0:
		ok = func(c *x509.Certificate) bool {
			for _, cn := range cns {
				if c.Subject.CommonName == cn {
					return true
				}
			}
			return false
		}
	case len(hostnames) > 0:
		ok = func(c *x509.Certificate) bool {
			for _, h := range hostnames {
				if c.VerifyHostname(h) == nil {
					return true
				}
			}
			return false
		}
	default:
		return nil
	}
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		for _, chain := range chains {
			if len(chain) > 0 && ok(chain[0]) {
				return nil
			}
		}
		return ErrIdentityRejected
	}
}

// exemptCert lets a verified chain whose leaf is own[0] pass check.
func exemptCert(check func([][]byte, [][]*x509.Certificate) error, own [][]byte) func([][]byte, [][]*x509.Certificate) error {
	if check == nil || len(own) == 0 {
		return check
	}
	return func(raw [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) > 0 && len(raw) > 0 && bytes.Equal(raw[0], own[0]) {
			return nil
		}
		return check(raw, chains)
	}
}

// crlChecker refuses certificates whose serial a CRL file lists. Like etcd it
// reads the file for every new connection, so a revocation applies without a
// restart, and refuses when the file cannot be read or parsed (fail closed);
// unlike etcd it parses again only when the content changed.
type crlChecker struct {
	path string

	mu      sync.Mutex          // guards raw and revoked
	raw     []byte              // content revoked was parsed from
	revoked map[string]struct{} // big-endian serial bytes, as etcd keys them
}

func newCRLChecker(path string) *crlChecker { return &crlChecker{path: path} }

// check returns an error if any certificate of the presented chain is
// revoked: etcd checks them all, not only the leaf.
func (c *crlChecker) check(certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return nil
	}
	revoked, err := c.load()
	if err != nil {
		return err
	}
	for _, cert := range certs {
		if _, ok := revoked[string(cert.SerialNumber.Bytes())]; ok {
			return fmt.Errorf("tls: certificate serial %x revoked (CRL %s)", cert.SerialNumber.Bytes(), c.path)
		}
	}
	return nil
}

func (c *crlChecker) load() (map[string]struct{}, error) {
	raw, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("tls: read CRL: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked != nil && bytes.Equal(raw, c.raw) {
		return c.revoked, nil
	}
	revoked, err := parseCRL(raw)
	if err != nil {
		return nil, fmt.Errorf("tls: CRL %s: %w", c.path, err)
	}
	c.raw, c.revoked = raw, revoked
	return revoked, nil
}

// CheckCRLFile reports whether path holds a CRL this package can use, so a
// server can warn at start instead of at the first refused connection.
func CheckCRLFile(path string) error {
	_, err := newCRLChecker(path).load()
	return err
}

// parseCRL reads a DER CRL or one or more PEM "X509 CRL" blocks. (etcd
// accepts DER only: with a PEM file it refuses every certificate.)
func parseCRL(raw []byte) (map[string]struct{}, error) {
	ders := [][]byte{raw}
	if bytes.Contains(raw, []byte("-----BEGIN")) {
		ders = nil
		for rest := raw; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type == "X509 CRL" {
				ders = append(ders, b.Bytes)
			}
		}
		if len(ders) == 0 {
			return nil, errors.New("no X509 CRL PEM block")
		}
	}
	revoked := map[string]struct{}{}
	for _, der := range ders {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, err
		}
		for _, e := range l.RevokedCertificateEntries {
			revoked[string(e.SerialNumber.Bytes())] = struct{}{}
		}
	}
	return revoked, nil
}

// serverChecks are the listener side's checks beyond the handshake's own
// chain verification.
type serverChecks struct {
	crl      *crlChecker
	identity func([][]byte, [][]*x509.Certificate) error
	// clientSAN is etcd's peer-listener check that the client certificate
	// names the address the connection comes from.
	clientSAN bool
	resolver  resolver
	reject    func(Rejection)
}

// install puts the checks on srv and, when reject is set, reports every
// refusal with the peer's address.
func (sc serverChecks) install(srv *tls.Config) {
	if sc.crl == nil && sc.identity == nil && !sc.clientSAN {
		return
	}
	srv.VerifyPeerCertificate = sc.identity
	if sc.crl != nil {
		// VerifyConnection also runs on resumed sessions, so a revocation
		// reaches clients holding a session ticket too.
		srv.VerifyConnection = func(cs tls.ConnectionState) error { return sc.verifyConnection(cs, nil) }
	}
	if sc.reject == nil && !sc.clientSAN {
		return
	}
	// The callbacks above do not know who is connecting; a per-handshake
	// copy of the config does, for the SAN check and so the log names the
	// refused peer.
	base := srv.Clone()
	srv.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		var remote net.Addr
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr()
		}
		report := func(cert *x509.Certificate, err error) {
			if sc.reject != nil {
				sc.reject(Rejection{Remote: remote, ServerName: hello.ServerName, Cert: cert, Err: err})
			}
		}
		if sc.identity != nil {
			c.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
				err := sc.identity(raw, chains)
				if err != nil {
					var leaf *x509.Certificate
					if len(raw) > 0 {
						leaf, _ = x509.ParseCertificate(raw[0])
					}
					report(leaf, err)
				}
				return err
			}
		}
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			err := sc.verifyConnection(cs, remote)
			if err != nil {
				report(cs.PeerCertificates[0], err)
			}
			return err
		}
		return c, nil
	}
}

// verifyConnection runs the CRL and SAN checks on a presented certificate.
func (sc serverChecks) verifyConnection(cs tls.ConnectionState, remote net.Addr) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	if sc.crl != nil {
		if err := sc.crl.check(cs.PeerCertificates); err != nil {
			return err
		}
	}
	if sc.clientSAN && remote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sanLookupTimeout)
		defer cancel()
		return checkClientSAN(ctx, sc.resolver, cs.PeerCertificates[0], remote.String())
	}
	return nil
}

// sanLookupTimeout bounds the DNS lookups of one SAN check.
const sanLookupTimeout = 5 * time.Second

// resolver is the part of *net.Resolver the SAN check uses.
type resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// checkClientSAN is etcd's check of a peer's client certificate against the
// address it connects from: a certificate without SANs passes; otherwise an
// IP SAN must match the address, or a DNS SAN must resolve to it (forward
// lookup) or be its reverse name (wildcards allowed).
func checkClientSAN(ctx context.Context, r resolver, cert *x509.Certificate, remoteAddr string) error {
	if len(cert.IPAddresses) == 0 && len(cert.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return fmt.Errorf("tls: client address %q: %w", remoteAddr, err)
	}
	if len(cert.IPAddresses) > 0 {
		err := cert.VerifyHostname(host)
		if err == nil {
			return nil
		}
		if len(cert.DNSNames) == 0 {
			return err
		}
	}
	ok, lerr := hostInDNSNames(ctx, r, host, cert.DNSNames)
	if ok {
		return nil
	}
	suffix := ""
	if lerr != nil {
		suffix = " (" + lerr.Error() + ")"
	}
	return fmt.Errorf("tls: %q does not match any of DNSNames %q%s", host, cert.DNSNames, suffix)
}

func hostInDNSNames(ctx context.Context, r resolver, host string, dnsNames []string) (bool, error) {
	var exact, suffixes []string
	for _, n := range dnsNames {
		if strings.HasPrefix(n, "*.") {
			suffixes = append(suffixes, n[1:]) // "*.example.com" matches names ending in ".example.com"
		} else {
			exact = append(exact, n)
		}
	}
	names, lastErr := r.LookupAddr(ctx, host)
	for _, name := range names {
		name = strings.TrimSuffix(name, ".")
		if slices.Contains(exact, name) || slices.ContainsFunc(suffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
			return true, nil
		}
	}
	for _, n := range exact {
		addrs, err := r.LookupHost(ctx, n)
		if err != nil {
			lastErr = err
			continue
		}
		if slices.Contains(addrs, host) {
			return true, nil
		}
	}
	return false, lastErr
}
