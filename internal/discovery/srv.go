package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Resolver is the part of net.Resolver DNS SRV discovery uses.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// SRVCluster is etcd's DNS SRV discovery (--discovery-srv domain,
// --discovery-srv-name suffix): the members of a new cluster are the
// targets of _etcd-server-ssl<-suffix>._tcp.<domain> (https peer URLs) and
// _etcd-server<-suffix>._tcp.<domain> (http). The target
// that resolves to one of this member's advertised peer addresses is this
// member, named name; the others are named 0, 1, ... (they publish their
// names once they serve). Records of both services count. It returns an
// --initial-cluster value.
func SRVCluster(ctx context.Context, r Resolver, domain, suffix, name string, advertised []url.URL) (string, error) {
	own := map[string]string{} // resolved ip:port → scheme
	for _, u := range advertised {
		addrs, err := resolve(ctx, r, u.Host)
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			own[a] = u.Scheme
		}
	}
	service := "etcd-server"
	if suffix != "" {
		service += "-" + suffix
	}
	var (
		errs  []error
		parts []string
		found bool
	)
	// As etcd: the records of both services count; only both failing is
	// an error.
	for _, s := range []struct{ service, scheme string }{{service + "-ssl", "https"}, {service, "http"}} {
		p, f, err := srvMembers(ctx, r, s.service, s.scheme, domain, name, own, len(parts))
		if err != nil {
			errs = append(errs, fmt.Errorf("error querying DNS SRV records for _%s %w", s.service, err))
			continue
		}
		parts, found = append(parts, p...), found || f
	}
	if len(parts) == 0 {
		return "", errors.Join(errs...)
	}
	if !found {
		return "", fmt.Errorf("cannot find local etcd member %q in SRV records", name)
	}
	return strings.Join(parts, ","), nil
}

// srvMembers returns name=url entries for service's SRV records; the
// members that are not this one are numbered from temp.
func srvMembers(ctx context.Context, r Resolver, service, scheme, domain, name string, own map[string]string, temp int) ([]string, bool, error) {
	_, srvs, err := r.LookupSRV(ctx, service, "tcp", domain)
	if err != nil {
		return nil, false, err
	}
	var (
		parts []string
		found bool
	)
	for _, srv := range srvs {
		host := strings.TrimSuffix(srv.Target, ".")
		port := strconv.Itoa(int(srv.Port))
		addrs, err := resolve(ctx, r, net.JoinHostPort(host, port))
		if err != nil {
			return nil, false, err
		}
		n := ""
		for _, a := range addrs {
			if sch, ok := own[a]; ok {
				if sch != scheme {
					return nil, false, fmt.Errorf("bootstrap at %s from DNS for %s has scheme mismatch with expected peer %s://%s", scheme+"://"+net.JoinHostPort(host, port), service, sch, a)
				}
				n, found = name, true
			}
		}
		if n == "" {
			n = strconv.Itoa(temp)
			temp++
		}
		parts = append(parts, fmt.Sprintf("%s=%s://%s", n, scheme, net.JoinHostPort(host, port)))
	}
	if len(parts) == 0 {
		return nil, false, fmt.Errorf("no SRV records for _%s._tcp.%s", service, domain)
	}
	return parts, found, nil
}

// resolve returns the ip:port addresses hostport names.
func resolve(ctx context.Context, r Resolver, hostport string) ([]string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), port)}, nil
	}
	ips, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.IP.String(), port))
	}
	return out, nil
}
