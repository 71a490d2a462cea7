package identity

import (
	"encoding/binary"
	"errors"
	"time"
)

// Session records are stored in a small binary form rather than JSON: the
// proxy looks up one or two records per request, and JSON decoding was
// three quarters of that cost. The form is deterministic (compare-and-swap
// compares bytes) and versioned:
//
//	version byte (1)
//	strings, each uvarint length + bytes: Parent, Host, Email, Sub, UserAgent, Source
//	uvarint group count, then each group as a string
//	varint Unix nanoseconds: SSOAt, MFAAt, Created, LastSeen, Expires (0 = zero time)
//
// The handle is the store key and the secret ID is never stored.
const sessionFormat = 1

// Limits on a decoded record, so that a corrupt value cannot make us
// allocate much.
const (
	maxRecordString = 4096
	maxRecordGroups = maxGroups
)

var errBadRecord = errors.New("identity: malformed session record")

// marshalSession encodes s (without ID and Handle).
func marshalSession(s *Session) []byte {
	n := 1 + 5*binary.MaxVarintLen64
	for _, f := range []string{s.Parent, s.Host, s.Email, s.Sub, s.UserAgent, s.Source} {
		n += binary.MaxVarintLen64 + len(f)
	}
	for _, g := range s.Groups {
		n += binary.MaxVarintLen64 + len(g)
	}
	b := make([]byte, 0, n)
	b = append(b, sessionFormat)
	for _, f := range []string{s.Parent, s.Host, s.Email, s.Sub, s.UserAgent, s.Source} {
		b = appendString(b, f)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Groups)))
	for _, g := range s.Groups {
		b = appendString(b, g)
	}
	for _, t := range []time.Time{s.SSOAt, s.MFAAt, s.Created, s.LastSeen, s.Expires} {
		var ns int64
		if !t.IsZero() {
			ns = t.UnixNano()
		}
		b = binary.AppendVarint(b, ns)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// unmarshalSession decodes a record into s (leaving ID and Handle alone).
func unmarshalSession(b []byte, s *Session) error {
	if len(b) == 0 || b[0] != sessionFormat {
		return errBadRecord
	}
	d := recordDecoder{b: b[1:]}
	for _, f := range []*string{&s.Parent, &s.Host, &s.Email, &s.Sub, &s.UserAgent, &s.Source} {
		*f = d.string()
	}
	n := d.uvarint()
	if n > maxRecordGroups {
		return errBadRecord
	}
	s.Groups = nil
	if n > 0 {
		s.Groups = make([]string, n)
		for i := range s.Groups {
			s.Groups[i] = d.string()
		}
	}
	for _, t := range []*time.Time{&s.SSOAt, &s.MFAAt, &s.Created, &s.LastSeen, &s.Expires} {
		*t = time.Time{}
		if ns := d.varint(); ns != 0 {
			*t = time.Unix(0, ns).UTC()
		}
	}
	if d.err || len(d.b) != 0 {
		return errBadRecord
	}
	return nil
}

// recordDecoder reads a record; any problem sets err and yields zeros.
type recordDecoder struct {
	b       []byte
	err     bool
	scratch [binary.MaxVarintLen64]byte
}

func (d *recordDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(d.scratch[:0], v)) { // overlong encodings are refused
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(d.scratch[:0], v)) {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) string() string {
	n := d.uvarint()
	if n > maxRecordString || n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
