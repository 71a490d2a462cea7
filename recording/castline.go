package recording

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Asciicast v2 event codes.
const (
	codeOutput = "o"
	codeResize = "r"
	codeMarker = "m"
)

// castHeader is the asciicast v2 header line. The gatehouse object carries
// the session's identity; players ignore keys they do not know.
type castHeader struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Gatehouse castMeta          `json:"gatehouse"`
}

// castMeta is what the header says about the session: the fields of Meta
// known at its start.
type castMeta struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Target    string    `json:"target"`
	Login     string    `json:"login"`
	SessionID string    `json:"session"`
	Source    string    `json:"source,omitempty"`
	Kind      string    `json:"kind,omitempty"`
	Command   string    `json:"command,omitempty"`
	Replica   string    `json:"replica,omitempty"`
	Start     time.Time `json:"start"`
}

// Terminal size used when the session has no terminal (exec, sftp):
// asciicast requires one.
const defaultWidth, defaultHeight = 80, 24

func newCastHeader(m Meta) castHeader {
	h := castHeader{
		Version: 2, Width: m.Width, Height: m.Height, Timestamp: m.Start.Unix(),
		Title: m.User + " on " + m.Target + " as " + m.Login,
		Gatehouse: castMeta{ID: m.ID, User: m.User, Target: m.Target, Login: m.Login, SessionID: m.SessionID,
			Source: m.Source, Kind: m.Kind, Command: m.Command, Replica: m.Replica, Start: m.Start},
	}
	if h.Width <= 0 || h.Height <= 0 {
		h.Width, h.Height = defaultWidth, defaultHeight
	}
	if m.Term != "" {
		h.Env = map[string]string{"TERM": m.Term}
	}
	return h
}

// eventLine is a structured event as a chunk line; the key tells it apart
// from asciicast lines, which are arrays.
type eventLine struct {
	Event *Event `json:"gatehouse_event"`
}

// appendEvent appends one asciicast event line [t, code, data]\n.
func appendEvent(b []byte, t time.Duration, code string, data []byte) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, t.Seconds(), 'f', 6, 64)
	b = append(b, `, "`...)
	b = append(b, code...)
	b = append(b, `", `...)
	b = appendJSONString(b, data)
	return append(b, "]\n"...)
}

// jsonPlain marks the ASCII bytes that stand for themselves in a JSON
// string; everything else below utf8.RuneSelf is escaped.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether all eight bytes of x are plain ASCII for a
// JSON string (jsonPlain): none has the high bit set, none is below 0x20,
// and none is '"', '\\' or DEL. The tests are the classic "has a zero byte"
// bit tricks on x and on x XORed with each excluded byte.
func plainWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) bool { return (v-ones)&^v&highs != 0 }
	return x&highs == 0 &&
		(x-0x20*ones)&^x&highs == 0 &&
		!hasZero(x^('"'*ones)) && !hasZero(x^('\\'*ones)) && !hasZero(x^(0x7f*ones))
}

// appendJSONString appends data as a JSON string. Invalid UTF-8 becomes
// U+FFFD (as asciinema itself records it); control characters are escaped.
// Runs of bytes that need no escaping are copied in one append: terminal
// output is mostly such runs, and this is on the recording's hot path.
func appendJSONString(b []byte, data []byte) []byte {
	const hex = "0123456789abcdef"
	b = slices.Grow(b, len(data)+len(data)/8+2)
	b = append(b, '"')
	start := 0
	for i := 0; i < len(data); {
		// Eight plain ASCII bytes at a time (most terminal output), else
		// one byte.
		if i+8 <= len(data) && plainWord(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
			continue
		}
		c := data[i]
		if c < utf8.RuneSelf {
			if jsonPlain[c] {
				i++
				continue
			}
			b = append(b, data[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, data[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, data[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, data[start:]...)
	return append(b, '"')
}

// completeUTF8 returns how many leading bytes of p end on a rune boundary:
// an incomplete multi-byte sequence at the very end (at most 3 bytes) is
// held back, so output split between two writes is not garbled.
func completeUTF8(p []byte) int {
	for k := 1; k <= 3 && k <= len(p); k++ {
		c := p[len(p)-k]
		if c < utf8.RuneSelf {
			return len(p) // ASCII: nothing pending
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(p[len(p)-k:]) {
				return len(p) - k
			}
			return len(p)
		}
	}
	return len(p)
}

// marshalLine encodes v as one JSON line.
func marshalLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
