package authz

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/google/go-cmp/cmp"
)

func TestDecideTarget(t *testing.T) {
	db := &config.Target{Name: "prod-db", Logins: []string{"ubuntu", "postgres"}, Allow: config.Allow{Groups: []string{"sre"}}, MFAMaxAge: config.Duration(30 * time.Minute)}
	every := &config.Target{Name: "vault", Logins: []string{"root"}, Allow: config.Allow{Emails: []string{"ops@example.com"}}, MFA: config.MFAEveryConnection}
	empty := &config.Target{Name: "nobody", Logins: []string{"ubuntu"}}
	sre := Subject{Email: "s@example.com", Groups: []string{"sre"}, MFAAt: now.Add(-5 * time.Minute)}
	staleSRE := sre
	staleSRE.MFAAt = now.Add(-31 * time.Minute)
	ops := Subject{Email: "OPS@example.com", MFAAt: now.Add(-time.Hour)}
	dev := Subject{Email: "d@example.com", Groups: []string{"dev"}, MFAAt: now}

	tests := []struct {
		name  string
		s     Subject
		t     *config.Target
		login string
		want  Decision
	}{
		{"allowed", sre, db, "ubuntu", Decision{Allow: true, Rule: "target:prod-db", Reason: "target prod-db: login ubuntu allowed by group sre"}},
		{"second login", sre, db, "postgres", Decision{Allow: true, Rule: "target:prod-db", Reason: "target prod-db: login postgres allowed by group sre"}},
		{"login not listed", sre, db, "root", Decision{Rule: "target:prod-db", Reason: `target prod-db: login "root" is not allowed`}},
		{"login case-sensitive", sre, db, "Ubuntu", Decision{Rule: "target:prod-db", Reason: `target prod-db: login "Ubuntu" is not allowed`}},
		{"empty login", sre, db, "", Decision{Rule: "target:prod-db", Reason: `target prod-db: login "" is not allowed`}},
		{"hostile login quoted", sre, db, "x\"\n\x1b[2J", Decision{Rule: "target:prod-db", Reason: `target prod-db: login "x???[2J" is not allowed`}},
		{"not a member", dev, db, "ubuntu", Decision{Rule: "target:prod-db", Reason: "target prod-db: group sre required"}},
		{"not a member and bad login reveals nothing about logins", dev, db, "root", Decision{Rule: "target:prod-db", Reason: "target prod-db: group sre required"}},
		{"stale mfa", staleSRE, db, "ubuntu", Decision{NeedMFA: true, Rule: "target:prod-db", Reason: "target prod-db: security key confirmation required (last one older than 30m0s)"}},
		{"every connection allowed by default age", ops, every, "root", Decision{Allow: true, EveryConnection: true, Rule: "target:vault", Reason: "target vault: login root allowed by email ops@example.com"}},
		{"every connection flagged on deny", dev, every, "root", Decision{EveryConnection: true, Rule: "target:vault", Reason: "target vault: a personally listed address required"}},
		{"empty allow", sre, empty, "ubuntu", Decision{Rule: "target:nobody", Reason: "target nobody: nobody is allowed (empty allow list)"}},
		{"nil target", sre, nil, "ubuntu", Decision{Rule: "target:", Reason: "no such target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecideTarget(tt.s, tt.t, tt.login, 12*time.Hour, now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecideTarget(%+v, %q) mismatch (-want +got):\n%s", tt.s, tt.login, diff)
			}
		})
	}
}
