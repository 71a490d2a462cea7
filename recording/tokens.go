package recording

import (
	"bytes"
	"hash/maphash"
	"strings"
)

// Search words are runs of letters, digits and _-./ (any byte >= 0x80
// counts as a letter, so UTF-8 words stay whole), 2..64 bytes, lowercased.
// A run that contains . - or / is also split at them, so "passwd" finds
// "cat /etc/passwd"; a query is tokenised the same way and every token must
// match.
const (
	minWord = 2
	maxWord = 64
	// maxSeen bounds the per-recording set of words already indexed (about
	// 100 KiB when full); past it, words are indexed again (idempotent
	// store writes) rather than remembered.
	maxSeen = 4096
)

// ANSI escape parsing states.
const (
	stText = iota
	stEsc  // after ESC
	stCSI  // ESC [ ... final byte 0x40..0x7e
	stOSC  // ESC ] ... BEL or ESC \ (also DCS, SOS, PM, APC strings)
	stOSCEsc
)

// tokenizer splits a byte stream into search words, skipping ANSI escape
// sequences. It keeps its state between feeds, so a word or an escape
// sequence split across two writes is handled; it is not safe for
// concurrent use.
type tokenizer struct {
	state int
	word  []byte // current run, capped at maxWord+1 (longer runs are dropped)
	long  bool   // current run exceeded maxWord
	seen  map[uint64]struct{}
	seed  maphash.Seed
}

func newTokenizer() *tokenizer { return &tokenizer{seed: maphash.MakeSeed()} }

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == '/' || c >= 0x80
}

// feed consumes p and calls emit for every completed word.
func (t *tokenizer) feed(p []byte, emit func(string)) {
	for _, c := range p {
		switch t.state {
		case stEsc:
			switch c {
			case '[':
				t.state = stCSI
			case ']', 'P', 'X', '^', '_':
				t.state = stOSC
			default:
				t.state = stText
			}
			continue
		case stCSI:
			if c >= 0x40 && c <= 0x7e {
				t.state = stText
				if c != 'm' {
					// Cursor movement and erasing separate words; colour
					// (SGR, "m") may change inside one.
					t.end(emit)
				}
			}
			continue
		case stOSC:
			if c == 0x07 {
				t.state = stText
			} else if c == 0x1b {
				t.state = stOSCEsc
			}
			continue
		case stOSCEsc:
			t.state = stText
			if c != '\\' {
				t.state = stOSC
			}
			continue
		}
		if c == 0x1b {
			t.state = stEsc
			continue
		}
		if !isWordByte(c) {
			t.end(emit)
			continue
		}
		if len(t.word) < maxWord {
			t.word = append(t.word, c)
		} else {
			t.long = true
		}
	}
}

// end finishes the current run (also used at the end of a stream).
func (t *tokenizer) end(emit func(string)) {
	if len(t.word) == 0 {
		return
	}
	if !t.long {
		splitWord(t.word, emit)
	}
	t.word, t.long = t.word[:0], false
}

// splitWord emits a run, its path segments (split at /) and their parts
// (split at . and -): "/home/u/upload.tgz" gives "home/u/upload.tgz",
// "home", "upload.tgz", "upload" and "tgz".
func splitWord(w []byte, emit func(string)) {
	whole := emitTrimmed(w, emit)
	if bytes.IndexByte(whole, '/') >= 0 {
		for seg := range bytes.SplitSeq(whole, []byte("/")) {
			seg = emitTrimmed(seg, emit)
			splitParts(seg, emit)
		}
		return
	}
	splitParts(whole, emit)
}

// splitParts emits the parts of a segment that contains . or -.
func splitParts(seg []byte, emit func(string)) {
	if !bytes.ContainsAny(seg, ".-") {
		return
	}
	for _, part := range bytes.FieldsFunc(seg, func(r rune) bool { return r == '.' || r == '-' }) {
		if len(part) >= minWord {
			emit(strings.ToLower(string(part)))
		}
	}
}

// emitTrimmed emits w without leading and trailing separators, if long
// enough, and returns it.
func emitTrimmed(w []byte, emit func(string)) []byte {
	w = bytes.Trim(w, ".-/")
	if len(w) >= minWord {
		emit(strings.ToLower(string(w)))
	}
	return w
}

// fresh reports whether word was not seen before in this recording and
// remembers it while the set has room.
func (t *tokenizer) fresh(word string) bool {
	h := maphash.String(t.seed, word)
	if _, ok := t.seen[h]; ok {
		return false
	}
	if t.seen == nil {
		t.seen = map[uint64]struct{}{}
	}
	if len(t.seen) < maxSeen {
		t.seen[h] = struct{}{}
	}
	return true
}

// queryWords tokenises a search query the way recordings are tokenised.
func queryWords(q string) []string {
	var out []string
	seen := map[string]bool{}
	t := tokenizer{}
	emit := func(w string) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	t.feed([]byte(q), emit)
	t.end(emit)
	return out
}
