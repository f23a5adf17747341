package transport

import (
	"net"
	"net/netip"
	"net/url"

	"go.uber.org/zap"
)

// LocalAddr is the address peer connections are dialed from with
// --feature-gates=SetMemberLocalAddr=true, chosen as etcd chooses it: the
// host of the first advertised peer URL that is an IP address neither
// loopback nor unspecified. "" (no URL qualifies) leaves the choice to the
// kernel. On a host with several addresses this makes peers see the
// member's connections come from the address it advertises, which peer
// firewalls and --peer-cert-allowed-hostname checks are written against.
// It logs its search and its choice with etcd's messages.
func LocalAddr(advertisePeerURLs []url.URL, lg *zap.Logger) string {
	if lg == nil {
		lg = zap.NewNop()
	}
	urls := make([]string, 0, len(advertisePeerURLs))
	for _, u := range advertisePeerURLs {
		urls = append(urls, u.String())
	}
	lg.Info("searching for a suitable member local address in AdvertisePeerURLs", zap.Strings("advertise-peer-urls", urls))
	for _, u := range advertisePeerURLs {
		addr, err := netip.ParseAddr(u.Hostname())
		if err != nil || addr.IsLoopback() || addr.IsUnspecified() {
			continue // a host name, or an address that cannot tell members apart
		}
		lg.Info("setting member local address", zap.String("LocalAddr", addr.String()))
		return addr.String()
	}
	lg.Warn("unable to set a member local address due to lack of suitable local addresses", zap.Strings("advertise-peer-urls", urls))
	return ""
}

// LocalTCPAddr is the dialer's source address for Config.LocalAddr: nil
// (the kernel chooses) for "" or anything that is not an IP address.
func LocalTCPAddr(addr string) net.Addr {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	return &net.TCPAddr{IP: ip.AsSlice()}
}
