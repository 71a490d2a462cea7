package authz

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ErrPathNotCanonical wraps every refusal of CanonicalPath. The front door
// answers such a request with 400 and an audit event, on every route.
var ErrPathNotCanonical = errors.New("authz: request path cannot be judged safely")

// MaxPathLen bounds the raw request path CanonicalPath accepts.
const MaxPathLen = 8192

// CanonicalPath returns the one form of a request path that is both judged
// by the path rules and forwarded upstream, or an error wrapping
// ErrPathNotCanonical.
//
// rawPath is the request's escaped path as it came on the wire (what
// r.URL.EscapedPath() gives; no query). Upstreams disagree on how to read
// the odd spellings of a path (Tomcat drops ";params", Windows servers
// strip trailing dots and spaces, some decode twice, some treat "\" as "/"),
// so rather than guess which reading an upstream applies, every spelling
// that more than one reading exists for is refused:
//
//   - a path not starting with "/", or longer than MaxPathLen;
//   - "%" not followed by two hex digits, and any "%25": an encoded "%"
//     only matters to an upstream that decodes twice, and refusing it
//     outright closes double encoding of every byte below;
//   - an encoded "/" (%2F), and "\" raw or encoded (%5C);
//   - ";" raw or encoded (%3B): path parameters;
//   - control characters raw or encoded (C0, DEL, C1), including NUL;
//   - dot segments ("." and ".."), raw or encoded (%2E), and any segment
//     that ends in "." or begins or ends with white space ("/admin.",
//     "/admin%20"): they name the same file as the segment without them on
//     some servers;
//   - "?" and "#" encoded (%3F, %23): an upstream that decodes and parses
//     again ends the path there;
//   - a non-ASCII character that a case mapping, simple case folding or
//     NFKC normalisation turns into ASCII ("/\uFF41dmin", the Kelvin sign,
//     dotless i, long s): see readsAsASCII;
//   - bytes that do not decode to valid UTF-8 (so overlong encodings such
//     as %C0%AF too).
//
// Empty segments ("//") are dropped: "//admin" becomes "/admin", and the
// upstream receives "/admin". A trailing slash is kept. Every other escape
// is decoded ("/%61dmin" becomes "/admin") and the segment is re-escaped in
// one fixed way: RFC 3986 unreserved characters, sub-delimiters, ":" and "@"
// stay as they are, everything else is %XX with upper-case hex. So
// CanonicalPath(canon) == canon, and an upstream that decodes canon once
// gets a clean path (path.Clean leaves it unchanged) made of exactly the
// segments that were judged. Letter case is kept: the path rules ignore
// ASCII case when they compare (see DecideRoute).
func CanonicalPath(rawPath string) (string, error) {
	canon, _, err := canonical(rawPath)
	return canon, err
}

// canonical returns CanonicalPath's result and its decoded form: what an
// upstream that decodes once sees, and what DecideRoute matches rules on.
func canonical(rawPath string) (canon, decoded string, err error) {
	segs, trailing, err := canonSegments(rawPath)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	b.Grow(len(rawPath))
	for _, s := range segs {
		b.WriteByte('/')
		escapeSegment(&b, s)
	}
	decoded = "/" + strings.Join(segs, "/")
	if trailing && len(segs) > 0 {
		b.WriteByte('/')
		decoded += "/"
	}
	if len(segs) == 0 {
		b.WriteByte('/')
	}
	// Escaping can triple the length; the bound holds for the result too,
	// or CanonicalPath(canon) would refuse what CanonicalPath returned.
	if b.Len() > MaxPathLen {
		return "", "", notCanon(-1, "too long")
	}
	return b.String(), decoded, nil
}

// notCanon builds a refusal that names the offending segment by position,
// never by content, so the error is safe to log.
func notCanon(seg int, why string) error {
	if seg < 0 {
		return fmt.Errorf("%w: %s", ErrPathNotCanonical, why)
	}
	return fmt.Errorf("%w: segment %d: %s", ErrPathNotCanonical, seg, why)
}

// canonSegments splits and decodes rawPath into its non-empty segments and
// reports whether it ends in "/". It applies every refusal CanonicalPath
// documents.
func canonSegments(rawPath string) ([]string, bool, error) {
	if rawPath == "" || rawPath[0] != '/' {
		return nil, false, notCanon(-1, "does not start with /")
	}
	if len(rawPath) > MaxPathLen {
		return nil, false, notCanon(-1, "too long")
	}
	parts := strings.Split(rawPath[1:], "/")
	segs := make([]string, 0, len(parts))
	for i, part := range parts {
		if part == "" {
			continue
		}
		s, err := decodeSegment(part, i+1)
		if err != nil {
			return nil, false, err
		}
		segs = append(segs, s)
	}
	return segs, strings.HasSuffix(rawPath, "/"), nil
}

// decodeSegment percent-decodes one raw segment (n is its position, for
// errors) and checks the decoded text.
func decodeSegment(raw string, n int) (string, error) {
	buf := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", notCanon(n, "malformed percent escape")
			}
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
			switch c {
			case '%':
				return "", notCanon(n, "encoded percent sign (double encoding)")
			case '/':
				return "", notCanon(n, "encoded slash")
			}
		}
		if c == '?' || c == '#' {
			// Judged as part of the path, but an upstream that decodes and
			// re-parses reads a query or fragment: "/admin%3F" is "/admin".
			return "", notCanon(n, "encoded ? or #")
		}
		switch {
		case c == '\\':
			return "", notCanon(n, "backslash")
		case c == ';':
			return "", notCanon(n, "path parameter (;)")
		case c < 0x20 || c == 0x7f:
			return "", notCanon(n, "control character")
		}
		buf = append(buf, c)
	}
	s := string(buf)
	if !utf8.ValidString(s) {
		return "", notCanon(n, "invalid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", notCanon(n, "control character")
		}
		if readsAsASCII(r) {
			return "", notCanon(n, "non-ASCII character an upstream may read as ASCII")
		}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	switch {
	case last == '.':
		// Covers "." and ".." too.
		return "", notCanon(n, "dot segment or trailing dot")
	case unicode.IsSpace(first) || unicode.IsSpace(last):
		return "", notCanon(n, "leading or trailing white space")
	}
	return s, nil
}

// readsAsASCII reports whether r is a non-ASCII rune some upstream may
// read as ASCII, so that "/ａdmin" or "/\u212Admin" could name what the
// rules judged as a different path: a case mapping or simple case folding
// of it is ASCII (Java's equalsIgnoreCase, strings.EqualFold), or its NFKC
// form holds an ASCII byte (fullwidth forms, ligatures, superscripts). Full
// case mappings that expand (ß to "SS") are not refused: they would refuse
// ordinary words, and the upstreams that compare case-insensitively
// compare rune by rune.
func readsAsASCII(r rune) bool {
	if r < utf8.RuneSelf {
		return false
	}
	if unicode.ToUpper(r) < utf8.RuneSelf || unicode.ToLower(r) < utf8.RuneSelf {
		return true
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf {
			return true
		}
	}
	var buf [utf8.UTFMax]byte
	nf := norm.NFKC.Bytes(buf[:utf8.EncodeRune(buf[:], r)])
	for _, c := range nf {
		if c < utf8.RuneSelf {
			return true
		}
	}
	return false
}

// escapeSegment writes s escaped for a path segment: RFC 3986 pchar
// (unreserved, sub-delims, ":" and "@") as is, all else %XX upper case.
// ";" never reaches here (refused), so "=" and "," cannot form parameters.
func escapeSegment(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if pchar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
}

// pchar reports whether c may appear unescaped in a canonical segment.
func pchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,=:@", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
