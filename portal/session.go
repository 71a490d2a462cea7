package portal

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// sessionLookup is the subset of *identity.Sessions that finds a session.
type sessionLookup interface {
	Lookup(ctx context.Context, id, host string) (*identity.Session, error)
}

// cookieSession returns the session whose ID the host's session cookie
// value seals, or nil when there is none or it is not valid (absent,
// malformed, forged, tampered, sealed for another host, expired, revoked,
// locked: to the person they all mean "sign in again"). A store failure is
// returned as an error so that callers fail closed with a 503. The portal
// and every app gate look their sessions up through it.
func cookieSession(ctx context.Context, codec sessionCodec, sessions sessionLookup, host, value string) (*identity.Session, error) {
	if value == "" {
		return nil, nil
	}
	id, err := codec.Open(SessionCookie, host, value)
	if err != nil {
		return nil, nil
	}
	s, err := sessions.Lookup(ctx, id, host)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, identity.ErrNotFound), errors.Is(err, identity.ErrForbidden), errors.Is(err, identity.ErrLocked):
		return nil, nil
	default:
		return nil, err
	}
}

// sessionCookieValue returns the value of the first SessionCookie in the
// request's Cookie headers, or "". Unlike http.Request.Cookie it parses
// only as far as it must and allocates nothing: it runs on every proxied
// request. A value that is not a plain cookie value is treated as absent.
func sessionCookieValue(h http.Header) string {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			name, val, ok := strings.Cut(part, "=")
			if !ok || name != SessionCookie {
				continue
			}
			val = strings.TrimRight(val, " \t")
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			for i := 0; i < len(val); i++ {
				if c := val[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == ';' || c == '\\' || c == ',' {
					return ""
				}
			}
			return val
		}
	}
	return ""
}
