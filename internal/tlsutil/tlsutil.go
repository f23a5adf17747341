package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// Settings are one side's TLS flags.
type Settings struct {
	CertFile, KeyFile             string
	ClientCertFile, ClientKeyFile string // for connections this member makes; default CertFile/KeyFile
	TrustedCAFile                 string
	ClientCertAuth                bool
	AutoTLS                       bool
	Hosts                         []string // for --auto-tls certificates
	// ValidityYears is --self-signed-cert-validity: how long an --auto-tls
	// certificate is valid, in years of 365 days, from now (0: one year).
	ValidityYears          uint
	CipherSuites           []string
	MinVersion, MaxVersion string
	// NextProtos are the ALPN protocols offered (gRPC needs "h2").
	NextProtos []string

	// CRLFile (--client-crl-file, --peer-crl-file) lists revoked
	// certificates; connections presenting one are refused by the listener.
	CRLFile string
	// AllowedCNs (--peer-cert-allowed-cn) and AllowedHostnames
	// (--peer-cert-allowed-hostname, --client-cert-allowed-hostname) restrict
	// which verified certificates the other side may present. As in etcd
	// they are mutually exclusive and apply to both configs of the Pair: the
	// listener checks client certificates, and connections this member dials
	// check the server's certificate.
	AllowedCNs       []string
	AllowedHostnames []string
	// Reject, if set, is told about each connection the listener refuses
	// because of CRLFile, AllowedCNs, AllowedHostnames or VerifyClientSAN.
	Reject func(Rejection)
	// ExemptOwnCert lets the certificate Pair.Client presents through the
	// listener's AllowedCNs/AllowedHostnames check. For the client port: the
	// member's connections to itself (lock, election, JSON gateway) are
	// in-process calls in etcd, which those flags never refuse.
	ExemptOwnCert bool
	// VerifyClientSAN makes the listener check that a client certificate
	// with SANs names the address the connection comes from (an IP SAN, or
	// a DNS SAN resolving to it): etcd's default on peer listeners, off with
	// --peer-skip-client-san-verification.
	VerifyClientSAN bool
}

// Enabled reports whether any TLS is configured.
func (s Settings) Enabled() bool { return s.CertFile != "" || s.AutoTLS }

// Pair is a server config for the listener and a client config for
// connections to the same kind of endpoint.
type Pair struct {
	Server *tls.Config
	Client *tls.Config
}

// Build returns the server and client configs for s.
func Build(s Settings) (*Pair, error) {
	if len(s.AllowedCNs) > 0 && len(s.AllowedHostnames) > 0 {
		return nil, fmt.Errorf("tls: allowed CNs and allowed hostnames are mutually exclusive (cns=%q, hostnames=%q)", s.AllowedCNs, s.AllowedHostnames)
	}
	var cert tls.Certificate
	var err error
	switch {
	case s.CertFile != "" || s.KeyFile != "":
		if s.CertFile == "" || s.KeyFile == "" {
			return nil, errors.New("tls: both a certificate and a key file are needed")
		}
		if cert, err = tls.LoadX509KeyPair(s.CertFile, s.KeyFile); err != nil {
			return nil, fmt.Errorf("tls: load %s / %s: %w", s.CertFile, s.KeyFile, err)
		}
	case s.AutoTLS:
		if cert, err = selfSigned(s.Hosts, s.ValidityYears); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("tls: no certificate configured")
	}
	minV, err := version(s.MinVersion, tls.VersionTLS12)
	if err != nil {
		return nil, err
	}
	maxV, err := version(s.MaxVersion, 0)
	if err != nil {
		return nil, err
	}
	suites, err := cipherSuites(s.CipherSuites)
	if err != nil {
		return nil, err
	}
	var pool *x509.CertPool
	if s.TrustedCAFile != "" {
		pem, err := os.ReadFile(s.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read trusted CA %s: %w", s.TrustedCAFile, err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no certificate in trusted CA file %s", s.TrustedCAFile)
		}
	}
	srv := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   minV,
		MaxVersion:   maxV,
		CipherSuites: suites,
		NextProtos:   s.NextProtos,
	}
	if s.ClientCertAuth {
		srv.ClientAuth = tls.RequireAndVerifyClientCert
		srv.ClientCAs = pool
		if pool == nil && s.AutoTLS {
			// Auto TLS has no CA: accept any client certificate, as etcd
			// does for --peer-auto-tls with --peer-client-cert-auth.
			srv.ClientAuth = tls.RequireAnyClientCert
		}
	} else if pool != nil {
		// etcd requires a verified client certificate as soon as a trusted
		// CA is configured, with or without --client-cert-auth: an operator
		// who gives a CA expects unauthenticated clients to be refused.
		srv.ClientAuth = tls.RequireAndVerifyClientCert
		srv.ClientCAs = pool
	}
	clientCert := cert
	if s.ClientCertFile != "" && s.ClientKeyFile != "" {
		if clientCert, err = tls.LoadX509KeyPair(s.ClientCertFile, s.ClientKeyFile); err != nil {
			return nil, fmt.Errorf("tls: load client certificate %s: %w", s.ClientCertFile, err)
		}
	}
	cli := &tls.Config{
		Certificates: []tls.Certificate{clientCert},
		RootCAs:      pool,
		MinVersion:   minV,
		MaxVersion:   maxV,
		CipherSuites: suites,
		NextProtos:   s.NextProtos,
	}
	if pool == nil {
		// Self-signed (auto TLS) peers cannot be verified against a CA:
		// like etcd, encrypt without verifying.
		cli.InsecureSkipVerify = true
	}
	identity := identityCheck(s.AllowedCNs, s.AllowedHostnames)
	var crl *crlChecker
	if s.CRLFile != "" {
		crl = newCRLChecker(s.CRLFile)
	}
	srvIdentity := identity
	if s.ExemptOwnCert {
		srvIdentity = exemptCert(identity, clientCert.Certificate)
	}
	serverChecks{crl: crl, identity: srvIdentity, clientSAN: s.VerifyClientSAN, resolver: net.DefaultResolver, reject: s.Reject}.install(srv)
	// etcd builds both configs from one base that carries the identity
	// check, so a member also refuses to talk to a server whose certificate
	// fails it. The CRL is checked by the listener only.
	cli.VerifyPeerCertificate = identity
	return &Pair{Server: srv, Client: cli}, nil
}

func version(s string, def uint16) (uint16, error) {
	switch strings.ToUpper(s) {
	case "":
		return def, nil
	case "TLS1.2":
		return tls.VersionTLS12, nil
	case "TLS1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls: unknown TLS version %q (TLS1.2 or TLS1.3)", s)
}

func cipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	known := map[string]uint16{}
	for _, c := range tls.CipherSuites() {
		known[c.Name] = c.ID
	}
	out := make([]uint16, 0, len(names))
	for _, n := range names {
		id, ok := known[strings.TrimSpace(n)]
		if !ok {
			return nil, fmt.Errorf("tls: unknown or insecure cipher suite %q", n)
		}
		out = append(out, id)
	}
	return out, nil
}

// selfSigned makes the certificate --auto-tls asks for: valid for years
// from now, for the given hosts (IPs or names) and localhost.
func selfSigned(hosts []string, years uint) (tls.Certificate, error) {
	if years == 0 {
		years = 1 // etcd's default; config refuses an explicit 0
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"metastore"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Duration(years) * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: self-sign: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
