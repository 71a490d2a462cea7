package authz

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

func TestMember(t *testing.T) {
	tests := []struct {
		name  string
		email string
		grps  []string
		allow config.Allow
		want  bool
	}{
		{"empty allow denies", "a@example.com", []string{"eng"}, config.Allow{}, false},
		{"empty allow denies empty subject", "", nil, config.Allow{}, false},
		{"group exact", "a@example.com", []string{"ops", "eng"}, config.Allow{Groups: []string{"eng"}}, true},
		{"group case-sensitive", "a@example.com", []string{"Eng"}, config.Allow{Groups: []string{"eng"}}, false},
		{"group no substring", "a@example.com", []string{"engineering"}, config.Allow{Groups: []string{"eng"}}, false},
		{"empty group entry never matches", "a@example.com", []string{""}, config.Allow{Groups: []string{""}}, false},
		{"no groups", "a@example.com", nil, config.Allow{Groups: []string{"eng"}}, false},
		{"email exact", "alice@example.com", nil, config.Allow{Emails: []string{"alice@example.com"}}, true},
		{"email case-insensitive", "Alice@Example.COM", nil, config.Allow{Emails: []string{"alice@example.com"}}, true},
		{"email other user", "bob@example.com", nil, config.Allow{Emails: []string{"alice@example.com"}}, false},
		{"email prefix is not a match", "alice@example.com.evil", nil, config.Allow{Emails: []string{"alice@example.com"}}, false},
		{"email with space", "alice@example.com ", nil, config.Allow{Emails: []string{"alice@example.com"}}, false},
		{"domain exact", "bob@example.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, true},
		{"domain case-insensitive", "bob@EXAMPLE.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, true},
		{"domain look-alike", "bob@evil-example.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"domain suffix", "bob@evilexample.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"subdomain not listed", "bob@dev.example.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"subdomain listed", "bob@dev.example.com", nil, config.Allow{EmailDomains: []string{"dev.example.com"}}, true},
		{"domain is after last at", "bob@example.com@evil.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"domain of quoted local part", `"bob@example.com"@evil.com`, nil, config.Allow{EmailDomains: []string{"evil.com"}}, true},
		{"domain trailing dot", "bob@example.com.", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"domain only, no local part", "@example.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"no at", "example.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"empty email", "", nil, config.Allow{EmailDomains: []string{"example.com"}, Emails: []string{""}}, false},
		{"control char", "bob\n@example.com", nil, config.Allow{EmailDomains: []string{"example.com"}}, false},
		{"any of several kinds", "carol@corp.example", []string{"x"}, config.Allow{Groups: []string{"eng"}, Emails: []string{"a@b.c"}, EmailDomains: []string{"corp.example"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Subject{Email: tt.email, Groups: tt.grps}
			if got := Member(s, tt.allow); got != tt.want {
				t.Errorf("Member(%+v, %+v) = %v, want %v", s, tt.allow, got, tt.want)
			}
		})
	}
}

func TestRequirementNeverNamesAddresses(t *testing.T) {
	a := config.Allow{Groups: []string{"eng", "sre"}, Emails: []string{"secret.person@example.com"}, EmailDomains: []string{"corp.example"}}
	got := requirement(a)
	want := "one of groups eng, sre or an address at corp.example or a personally listed address required"
	if got != want {
		t.Errorf("requirement = %q, want %q", got, want)
	}
}
