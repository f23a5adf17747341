package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/migrate"
)

const migrateUsage = `metastore: usage: metastore migrate follow|status|cutover --from <etcd endpoints> --to <metastore endpoints> [--token T] [--from-user u:p] [--to-user u:p] [--from-cacert F --from-cert F --from-key F] [--to-cacert F --to-cert F --to-key F] [--timeout D]`

// runMigrate handles `metastore migrate follow|status|cutover`, the online
// migration from a live etcd (internal/migrate, docs/migration.md).
func runMigrate(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || (args[0] != "follow" && args[0] != "status" && args[0] != "cutover") {
		fmt.Fprintln(stderr, migrateUsage)
		return exitUsage
	}
	cmd := args[0]
	fs := flag.NewFlagSet("migrate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "client URLs of the etcd cluster, comma-separated")
	to := fs.String("to", "", "client URLs of every metastore member, comma-separated")
	token := fs.String("token", "", "the --migrate-token the metastore members were restored with")
	fromUser := fs.String("from-user", "", "etcd user:password")
	toUser := fs.String("to-user", "", "metastore user:password (the restored etcd users)")
	timeout := fs.Duration("timeout", time.Minute, "cutover: how long to wait for metastore to catch up")
	var fromTLS, toTLS tlsFiles
	fromTLS.register(fs, "from", "etcd")
	toTLS.register(fs, "to", "metastore")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	fromCfg, err := fromTLS.config()
	if err != nil {
		fmt.Fprintf(stderr, "metastore: migrate: %v\n", err)
		return exitUsage
	}
	toCfg, err := toTLS.config()
	if err != nil {
		fmt.Fprintf(stderr, "metastore: migrate: %v\n", err)
		return exitUsage
	}
	fromConn, toConn := conn{user: *fromUser, tls: fromCfg}, conn{user: *toUser, tls: toCfg}
	if *from == "" || *to == "" || (cmd != "status" && *token == "") {
		fmt.Fprintln(stderr, migrateUsage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	src, err := newClient(*from, fromConn)
	if err != nil {
		fmt.Fprintf(stderr, "metastore: migrate: etcd: %v\n", err)
		return exitFailed
	}
	defer src.Close()
	dsts := strings.Split(*to, ",")
	switch cmd {
	case "follow":
		dst, err := newClient(*to, toConn)
		if err != nil {
			fmt.Fprintf(stderr, "metastore: migrate: metastore: %v\n", err)
			return exitFailed
		}
		defer dst.Close()
		f := &migrate.Follower{From: src, To: dst, Token: *token, Logf: func(format string, a ...any) {
			fmt.Fprintf(stdout, "metastore migrate: "+format+"\n", a...)
		}}
		if err := f.Run(ctx); err != nil {
			fmt.Fprintf(stderr, "metastore: migrate follow: %v\n", err)
			return exitFailed
		}
		return exitOK
	case "status":
		return migrateStatus(ctx, src, dsts, toConn, stdout, stderr)
	default:
		return migrateCutover(ctx, src, dsts, toConn, *token, *timeout, stdout, stderr)
	}
}

// conn is how to reach one cluster: credentials and TLS (nil: plain).
type conn struct {
	user string // user:password, or empty
	tls  *tls.Config
}

func newClient(endpoints string, c conn) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 10 * time.Second, TLS: c.tls}
	if c.user != "" {
		u, p, ok := strings.Cut(c.user, ":")
		if !ok {
			return nil, fmt.Errorf("user %q is not user:password", c.user)
		}
		cfg.Username, cfg.Password = u, p
	}
	return clientv3.New(cfg)
}

// tlsFiles are the --<side>-cacert/-cert/-key flags, as etcdctl's.
type tlsFiles struct{ ca, cert, key string }

func (f *tlsFiles) register(fs *flag.FlagSet, side, what string) {
	fs.StringVar(&f.ca, side+"-cacert", "", "CA bundle that signed the "+what+" servers' certificates (enables TLS)")
	fs.StringVar(&f.cert, side+"-cert", "", "client certificate for "+what)
	fs.StringVar(&f.key, side+"-key", "", "client key for "+what)
}

// config is nil when no flag was given.
func (f *tlsFiles) config() (*tls.Config, error) {
	if f.ca == "" && f.cert == "" && f.key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", f.ca)
		}
	}
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("a client certificate needs both --*-cert and --*-key")
	}
	if f.cert != "" {
		c, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// etcdRevision is the etcd cluster's current revision.
func etcdRevision(ctx context.Context, c *clientv3.Client) (int64, error) {
	r, err := c.Get(ctx, "\x00")
	if err != nil {
		return 0, fmt.Errorf("etcd revision: %w", err)
	}
	return r.Header.Revision, nil
}

func migrateStatus(ctx context.Context, src *clientv3.Client, dsts []string, to conn, stdout, stderr io.Writer) int {
	erev, err := etcdRevision(ctx, src)
	if err != nil {
		fmt.Fprintf(stderr, "metastore: migrate status: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "etcd revision %d\n", erev)
	code := exitOK
	for _, ep := range dsts {
		c, err := newClient(ep, to)
		if err == nil {
			var migrating bool
			var rev int64
			migrating, rev, err = migrate.MemberState(ctx, c)
			_ = c.Close()
			if err == nil {
				fmt.Fprintf(stdout, "%s: revision %d, lag %d revisions, migrating %v\n", ep, rev, erev-rev, migrating)
				continue
			}
		}
		fmt.Fprintf(stdout, "%s: %v\n", ep, err)
		code = exitFailed
	}
	return code
}

// migrateCutover waits until every member applied etcd's last revision,
// checks etcd is no longer written and its auth state is the restored one,
// then opens the members for writes.
func migrateCutover(ctx context.Context, src *clientv3.Client, dsts []string, to conn, token string, timeout time.Duration, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "metastore: migrate cutover: "+format+"\n", a...)
		return exitFailed
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	erev, err := etcdRevision(ctx, src)
	if err != nil {
		return fail("%v", err)
	}
	var clients []*clientv3.Client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for _, ep := range dsts {
		c, err := newClient(ep, to)
		if err != nil {
			return fail("%s: %v", ep, err)
		}
		clients = append(clients, c)
		for {
			_, rev, err := migrate.MemberState(ctx, c)
			if err != nil {
				return fail("%s: %v", ep, err)
			}
			if rev >= erev {
				break
			}
			select {
			case <-ctx.Done():
				return fail("%s is at revision %d, etcd at %d after %v: is `metastore migrate follow` running?", ep, rev, erev, timeout)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if now, err := etcdRevision(ctx, src); err != nil {
		return fail("%v", err)
	} else if now != erev {
		return fail("etcd is still being written (revision %d, was %d): stop its writers first", now, erev)
	}
	ea, err := src.AuthStatus(ctx)
	if err != nil {
		return fail("etcd auth status: %v", err)
	}
	ma, err := clients[0].AuthStatus(ctx)
	if err != nil {
		return fail("metastore auth status: %v", err)
	}
	if ea.AuthRevision != ma.AuthRevision || ea.Enabled != ma.Enabled {
		return fail("auth changed on etcd since the snapshot (auth revision %d, metastore has %d): follow does not carry auth changes; restore a newer snapshot", ea.AuthRevision, ma.AuthRevision)
	}
	// Leases are brought in line by the follower (it revokes on metastore
	// the leases etcd ended once their keys' deletes arrived): wait for it.
	for {
		same, err := sameLeases(ctx, src, clients[0])
		if err != nil {
			return fail("%v", err)
		}
		if same {
			break
		}
		select {
		case <-ctx.Done():
			return fail("metastore's leases still differ from etcd's after %v: is `metastore migrate follow` running?", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for i, c := range clients {
		if err := migrate.CutoverMember(ctx, c, token); err != nil {
			return fail("%s: %v", dsts[i], err)
		}
	}
	fmt.Fprintf(stdout, "cut over at revision %d: metastore accepts writes; point clients at %s\n", erev, strings.Join(dsts, ","))
	return exitOK
}

// sameLeases reports whether both clusters hold the same lease IDs.
func sameLeases(ctx context.Context, a, b *clientv3.Client) (bool, error) {
	la, err := a.Leases(ctx)
	if err != nil {
		return false, fmt.Errorf("etcd leases: %w", err)
	}
	lb, err := b.Leases(ctx)
	if err != nil {
		return false, fmt.Errorf("metastore leases: %w", err)
	}
	ids := map[clientv3.LeaseID]bool{}
	for _, l := range la.Leases {
		ids[l.ID] = true
	}
	for _, l := range lb.Leases {
		if !ids[l.ID] {
			return false, nil
		}
	}
	return len(la.Leases) == len(lb.Leases), nil
}
