package config

import (
	"net"
	"strings"
	"unicode"
)

// DefaultRedisPrefix namespaces Gatehouse's keys and channels in a Redis
// that other programs may share.
const DefaultRedisPrefix = "gatehouse:"

// maxRedisPrefix bounds redis.prefix; it is repeated in every key.
const maxRedisPrefix = 64

// redis checks the redis section.
func (v *validator) redis(r Redis) {
	if r.Addr == "" {
		v.addf("redis.addr", "required when redis is set")
	} else if host, _, err := net.SplitHostPort(r.Addr); err != nil || host == "" {
		v.addf("redis.addr", "must be host:port")
	}
	if r.Username != "" && !printable(r.Username) {
		v.addf("redis.username", "must be printable, without spaces")
	}
	v.absFile("redis.password_file", r.PasswordFile, false)
	if r.DB < 0 || r.DB > 15 {
		v.addf("redis.db", "must be between 0 and 15")
	}
	if r.TLS != nil {
		v.absFile("redis.tls.ca_file", r.TLS.CAFile, false)
		if sn := r.TLS.ServerName; sn != "" && net.ParseIP(sn) == nil && !hostRE.MatchString(sn) {
			v.addf("redis.tls.server_name", "must be a lowercase DNS name or an IP address")
		}
	}
	switch {
	case len(r.Prefix) > maxRedisPrefix:
		v.addf("redis.prefix", "longer than %d bytes", maxRedisPrefix)
	case r.Prefix != "" && !printable(r.Prefix):
		v.addf("redis.prefix", "must be printable, without spaces")
	}
}

// printable reports whether s has only printable characters and no spaces.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) })
}
