package server

import (
	"fmt"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/rpc"
)

// openAuth loads the auth store with the token provider --auth-token names.
func (s *Server) openAuth() error {
	a := s.cfg.Auth
	tp, err := auth.NewTokenProvider(a.Token, a.TokenTTL)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	st, err := auth.Open(s.eng, auth.Options{Tokens: tp, BcryptCost: a.BcryptCost})
	if err != nil {
		return fmt.Errorf("server: load auth: %w", err)
	}
	s.auth = st
	return nil
}

// authInterceptors fills the middleware chain's auth slot.
func (s *Server) authInterceptors() {
	var leases func() []int64
	if s.lessor != nil {
		leases = func() []int64 {
			ls := s.lessor.Leases()
			out := make([]int64, len(ls))
			for i, l := range ls {
				out[i] = l.ID
			}
			return out
		}
	}
	cfg := rpc.AuthConfig{Store: s.auth, Leases: leases, ClientCertAuth: s.cfg.ClientTLS.ClientCertAuth}
	if s.lessor != nil {
		cfg.LeaseKeys = s.lessor.Keys
	}
	s.rel.authUnary, s.rel.authStream = rpc.AuthInterceptors(cfg)
}
