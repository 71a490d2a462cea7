package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Client describes the browser or SSH client behind a request. It is used
// for audit events, session listings and per-source rate limits.
type Client struct {
	// Source is the remote address, "ip" or "ip:port".
	Source string
	// UserAgent is the browser's User-Agent header (truncated when stored).
	UserAgent string
}

type clientKey struct{}

// WithClient returns a context carrying c; identity reads it for audit
// events and session records. The portal sets it once per request.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// clientFrom returns the Client stored by WithClient, or the zero Client.
func clientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// SourceKey reduces a remote address to the unit rate limits count: the IPv4
// address, or the /64 network of an IPv6 address. Unparseable input is
// returned as "invalid" so that it still shares one bucket.
func SourceKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "invalid"
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return "invalid"
	}
	return p.String()
}

// randomBytes returns n random bytes.
func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// randomToken returns n random bytes encoded as unpadded base64url.
func randomToken(n int) (string, error) {
	b, err := randomBytes(n)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashToken returns the hex SHA-256 of a secret token, used as its store key
// so that a store dump does not reveal usable tokens.
func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// normEmail normalises an email address for use as a key: trimmed and
// lower-cased.
func normEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// emailKey escapes a normalised email for use inside a store key, so that
// no address can collide with another's prefix.
func emailKey(email string) string {
	return url.PathEscape(normEmail(email))
}
