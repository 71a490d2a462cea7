package sshgw

import (
	"fmt"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// listSession answers a session on a connection without a target: it
// prints the targets and logins the person may use and exits with 0.
func (c *conn) listSession(nc gossh.NewChannel, a *authResult) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	pty := false
	for r := range reqs {
		switch r.Type {
		case "pty-req":
			pty = true
			_ = r.Reply(true, nil)
		case "shell", "exec":
			_ = r.Reply(true, nil)
			text := c.s.listing(a.who)
			if pty {
				text = strings.ReplaceAll(text, "\n", "\r\n")
			}
			_, _ = ch.Write([]byte(text))
			_ = ch.CloseWrite()
			_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{0}))
			return
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

// listing renders the targets and logins who may use.
func (s *Server) listing(who authz.Subject) string {
	p := s.policy()
	var b strings.Builder
	fmt.Fprintf(&b, "Gatehouse: targets for %s\n", sanitize(who.Email))
	n := 0
	for _, t := range p.order {
		var logins []string
		for _, l := range t.cfg.Logins {
			d := authz.DecideTarget(who, t.cfg, l, p.defaultMFA, s.now())
			if d.Allow || d.NeedMFA {
				logins = append(logins, l)
			}
		}
		if len(logins) == 0 {
			continue
		}
		n++
		fmt.Fprintf(&b, "  %-24s %s\n", t.cfg.Name, strings.Join(logins, ", "))
	}
	if n == 0 {
		b.WriteString("  (no targets)\n")
		return b.String()
	}
	gw := gatewayNames(p.cfg)[0]
	fmt.Fprintf(&b, "Connect with: ssh -p %s LOGIN@TARGET@%s  or  ssh -J %s:%s LOGIN@TARGET\n", sshPort(p.cfg), gw, gw, sshPort(p.cfg))
	return b.String()
}
