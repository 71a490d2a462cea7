package authz

import (
	"strings"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Member reports whether s is listed by a: one of its groups is in
// a.Groups (exact, case-sensitive), its email equals one of a.Emails
// (case-insensitive, whole address), or the domain of its email (the part
// after the last "@") equals one of a.EmailDomains (case-insensitive, whole
// domain: subdomains and look-alikes do not match). An empty a lists nobody.
func Member(s Subject, a config.Allow) bool {
	k, _ := match(s, a)
	return k != matchNone
}

type matchKind int

const (
	matchNone matchKind = iota
	matchGroup
	matchEmail
	matchDomain
)

// match returns how s is listed by a and the entry that matched.
func match(s Subject, a config.Allow) (matchKind, string) {
	for _, want := range a.Groups {
		if want == "" {
			continue
		}
		for _, g := range s.Groups {
			if g == want {
				return matchGroup, want
			}
		}
	}
	if !plausibleEmail(s.Email) {
		return matchNone, ""
	}
	for _, e := range a.Emails {
		if e != "" && strings.EqualFold(s.Email, e) {
			return matchEmail, e
		}
	}
	if len(a.EmailDomains) > 0 {
		domain := s.Email[strings.LastIndexByte(s.Email, '@')+1:]
		for _, d := range a.EmailDomains {
			if d != "" && strings.EqualFold(domain, d) {
				return matchDomain, d
			}
		}
	}
	return matchNone, ""
}

// plausibleEmail rejects addresses that cannot be matched safely: empty, no
// "@", an empty local part or domain, or containing whitespace or control
// characters.
func plausibleEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 {
		return false
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// requirement describes what a lists in words for a deny reason. It names
// groups and domains (whom to ask) but never individual addresses.
func requirement(a config.Allow) string {
	if a.Empty() {
		return "nobody is allowed (empty allow list)"
	}
	var parts []string
	switch len(a.Groups) {
	case 0:
	case 1:
		parts = append(parts, "group "+a.Groups[0])
	default:
		parts = append(parts, "one of groups "+strings.Join(a.Groups, ", "))
	}
	switch len(a.EmailDomains) {
	case 0:
	case 1:
		parts = append(parts, "an address at "+a.EmailDomains[0])
	default:
		parts = append(parts, "an address at one of "+strings.Join(a.EmailDomains, ", "))
	}
	if len(a.Emails) > 0 {
		parts = append(parts, "a personally listed address")
	}
	return strings.Join(parts, " or ") + " required"
}

// admitted says in words which entry admitted the subject, e.g. "group
// engineering". The matched email is the subject's own address.
func admitted(k matchKind, entry string) string {
	switch k {
	case matchGroup:
		return "group " + entry
	case matchEmail:
		return "email " + entry
	case matchDomain:
		return "email domain " + entry
	}
	return "nothing"
}
