package config

import (
	"fmt"
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
	switch {
	case r.Sentinel != nil:
		if r.Addr != "" {
			v.addf("redis.addr", "set either addr or sentinel, not both")
		}
		v.sentinel(*r.Sentinel)
	case r.Addr == "":
		v.addf("redis.addr", "required when redis is set (or redis.sentinel)")
	default:
		v.hostPort("redis.addr", r.Addr)
	}
	if r.Username != "" && !printable(r.Username) {
		v.addf("redis.username", "must be printable, without spaces")
	}
	v.absFile("redis.password_file", r.PasswordFile, false)
	if r.DB < 0 || r.DB > 15 {
		v.addf("redis.db", "must be between 0 and 15")
	}
	if r.TLS != nil {
		if r.Sentinel != nil && r.TLS.ServerName == "" {
			// The master's address changes with each failover; the name
			// to verify must not.
			v.addf("redis.tls.server_name", "required with redis.sentinel")
		}
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

// sentinel checks redis.sentinel.
func (v *validator) sentinel(s Sentinel) {
	if s.MasterName == "" || !printable(s.MasterName) {
		v.addf("redis.sentinel.master_name", "required, printable, without spaces")
	}
	if len(s.Addrs) == 0 {
		v.addf("redis.sentinel.addrs", "at least one host:port")
	}
	for i, a := range s.Addrs {
		v.hostPort(fmt.Sprintf("redis.sentinel.addrs[%d]", i), a)
	}
	if s.Username != "" && !printable(s.Username) {
		v.addf("redis.sentinel.username", "must be printable, without spaces")
	}
	v.absFile("redis.sentinel.password_file", s.PasswordFile, false)
}

// hostPort checks a host:port address with a non-empty host.
func (v *validator) hostPort(path, addr string) {
	if host, _, err := net.SplitHostPort(addr); err != nil || host == "" {
		v.addf(path, "must be host:port")
	}
}

// printable reports whether s has only printable characters and no spaces.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) })
}
