package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ChainError is a problem Verify found, at a 1-based line number.
type ChainError struct {
	Line    int
	Problem string
}

func (e *ChainError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Problem) }

// lookahead bounds how far Verify reads past a seq gap to tell a removed
// line from a reordered one.
const lookahead = 10000

// Verify reads an audit log and checks its hash chain: every line must be a
// JSON event; the first has seq 1 and an empty prev; each next one has the
// next seq and carries the SHA-256 of the line before it. It returns the
// number of lines verified before the first problem and, if there is one, a
// *ChainError naming the line and what is wrong with it (an edited, removed,
// reordered, truncated or garbage line).
//
// A hash chain has no link after its last line, so it cannot show that the
// last line was edited or that lines were cut from the end: compare the last
// line with a copy kept elsewhere, such as the webhook receiver's.
func Verify(r io.Reader) (lines int, err error) {
	lr := lineReader{r: bufio.NewReaderSize(r, 64<<10)}
	var prevLine []byte
	var prevSeq uint64
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		n := lines + 1
		if err != nil {
			return lines, &ChainError{Line: n, Problem: err.Error()}
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return lines, &ChainError{Line: n, Problem: fmt.Sprintf("not an audit event (%v)", err)}
		}
		want := prevSeq + 1
		switch {
		case ev.Seq != want:
			return lines, &ChainError{Line: n, Problem: seqProblem(&lr, n, ev.Seq, want)}
		case n == 1 && ev.Prev != "":
			return lines, &ChainError{Line: n, Problem: "first line has a prev hash, want none (lines removed from the start)"}
		case n > 1 && ev.Prev != lineHash(prevLine):
			return lines, &ChainError{Line: n, Problem: fmt.Sprintf(
				"prev hash does not match line %d (line %d edited, or lines removed or reordered and renumbered)", n-1, n-1)}
		}
		prevLine = append(prevLine[:0], line...)
		prevSeq = ev.Seq
		lines = n
	}
}

// VerifyFile is Verify on the file at path.
func VerifyFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return Verify(f)
}

// seqProblem explains a seq that is not the next one, reading ahead to find
// where the wanted seq went.
func seqProblem(lr *lineReader, n int, got, want uint64) string {
	base := fmt.Sprintf("seq %d, want %d", got, want)
	if got < want {
		return base + " (line duplicated or lines reordered)"
	}
	for i := 1; i <= lookahead; i++ {
		line, err := lr.next()
		if err != nil {
			break
		}
		var ev struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(line, &ev) == nil && ev.Seq == want {
			return fmt.Sprintf("%s (lines reordered: seq %d is at line %d)", base, want, n+i)
		}
	}
	if n == 1 {
		return fmt.Sprintf("%s (%d line(s) removed from the start)", base, got-want)
	}
	return fmt.Sprintf("%s (%d line(s) removed before this one)", base, got-want)
}

// lineReader splits a stream into newline-terminated lines of at most
// maxLine bytes.
type lineReader struct {
	r   *bufio.Reader
	buf []byte
}

// next returns the next line without its newline, io.EOF at a clean end,
// or an error for an overlong or unterminated line.
func (lr *lineReader) next() ([]byte, error) {
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.r.ReadSlice('\n')
		lr.buf = append(lr.buf, chunk...)
		if len(lr.buf) > maxLine+1 {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		switch {
		case err == nil:
			return lr.buf[:len(lr.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(lr.buf) == 0:
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			return nil, errors.New("no newline at the end: the last line is truncated")
		default:
			return nil, err
		}
	}
}
