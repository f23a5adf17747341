package server

import (
	"fmt"
	"net/http"

	"github.com/metastore/metastore/internal/httpapi"
)

// clientHTTP puts --cors and --host-whitelist in front of the HTTP endpoints
// of the client URLs. The metrics URLs stay unchecked, as in etcd.
func (s *Server) clientHTTP(h http.Handler) (http.Handler, error) {
	ac, err := httpapi.NewAccessControl(s.cfg.GRPC.CORS, s.cfg.GRPC.HostWhitelist, s.lg)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return ac.Wrap(h), nil
}
