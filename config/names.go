package config

import "regexp"

// The name rules are exported so that the SSH door parses "LOGIN@TARGET"
// with exactly the syntax the config accepts: one rule, checked in both
// places, never two copies that drift apart.
var (
	nameRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	loginRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
)

// ValidLogin reports whether s has the syntax of a target login (a Unix
// user name): lowercase letters, digits, _ . -, at most 32, starting with a
// letter or _.
func ValidLogin(s string) bool { return loginRE.MatchString(s) }

// ValidTargetName reports whether s has the syntax of a target (or route)
// name: lowercase letters, digits and dashes, at most 63, not starting or
// ending with a dash.
func ValidTargetName(s string) bool { return nameRE.MatchString(s) }
