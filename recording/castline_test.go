package recording

import (
	"encoding/binary"
	"testing"
)

// TestPlainWord checks the eight-byte test against the byte table for
// every byte value in every position.
func TestPlainWord(t *testing.T) {
	base := []byte("abcdefgh")
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			want := c < 0x80 && jsonPlain[c]
			if got := plainWord(binary.LittleEndian.Uint64(b)); got != want {
				t.Fatalf("byte %#x at %d: plainWord = %v, want %v", c, pos, got, want)
			}
		}
	}
}
