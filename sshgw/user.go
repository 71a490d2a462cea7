package sshgw

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-dev/gatehouse/config"
)

// maxUserLen bounds the SSH user name; anything longer is hostile or a
// mistake.
const maxUserLen = 256

// Errors of ParseUser. Their text is shown to the user as is, so it never
// echoes the raw input.
var (
	errUserEmpty    = errors.New("invalid user name: empty")
	errUserLong     = fmt.Errorf("invalid user name: longer than %d bytes", maxUserLen)
	errUserChar     = errors.New("invalid user name: contains a space, control or non-printable character")
	errUserDoubleAt = errors.New("invalid user name: contains @@ (use LOGIN@TARGET)")
	errUserNoLogin  = errors.New("invalid user name: empty login before @ (use LOGIN@TARGET)")
	errUserNoTarget = errors.New("invalid user name: empty target after @ (use LOGIN@TARGET)")
	errUserLogin    = errors.New("invalid user name: the login must be lowercase letters, digits, _ . - (at most 32, starting with a letter or _)")
	errUserTarget   = errors.New("invalid user name: the target must be a target name (lowercase letters, digits and dashes)")
)

// ParseUser splits an SSH user name into the login and the target.
//
// "LOGIN@TARGET" names a login on a target; ssh splits "LOGIN@TARGET@gate"
// at the last "@", so the gateway receives "LOGIN@TARGET" and this function
// splits it at its last "@" too. A name without "@" is returned whole as
// login with an empty target: it is the local user name of a connection
// that lists targets or carries ProxyJump, or the login of the inner
// connection of ProxyJump (the caller checks it with validLogin then).
//
// ParseUser is strict: empty parts, "@@", spaces, control and non-ASCII
// characters and names over 256 bytes are refused, and with a target the
// login and target must have the syntax the config allows.
func ParseUser(s string) (login, target string, err error) {
	switch {
	case s == "":
		return "", "", errUserEmpty
	case len(s) > maxUserLen:
		return "", "", errUserLong
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return "", "", errUserChar
		}
	}
	if strings.Contains(s, "@@") {
		return "", "", errUserDoubleAt
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s, "", nil
	}
	login, target = s[:at], s[at+1:]
	switch {
	case login == "":
		return "", "", errUserNoLogin
	case target == "":
		return "", "", errUserNoTarget
	case !validLogin(login):
		return "", "", errUserLogin
	case !config.ValidTargetName(target):
		return "", "", errUserTarget
	}
	return login, target, nil
}

// validLogin reports whether login has the syntax of a configured login;
// the rule is config's, so that the door accepts exactly what the config
// may list.
func validLogin(login string) bool { return config.ValidLogin(login) }
