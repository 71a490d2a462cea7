package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// maxLine bounds one audit line, for Verify and for resuming.
const maxLine = 1 << 20

// RepairType is the Type of the event New records after moving a torn final
// line aside.
const RepairType = "audit.repair"

// chainState is where an existing log file leaves the chain.
type chainState struct {
	size   int64  // bytes of complete lines
	seq    uint64 // seq of the last line (0 if none)
	prev   string // hash of the last line ("" if none)
	repair *Event // event to record, if a torn line was moved aside
}

// openChain opens the log file for appending, locks it, repairs a torn final
// line and reads the chain state from the last complete lines.
func openChain(path string, now time.Time) (*os.File, chainState, error) {
	var st chainState
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, st, fmt.Errorf("audit log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, st, fmt.Errorf("audit log: %w", err)
	}
	fail := func(err error) (*os.File, chainState, error) {
		f.Close()
		return nil, chainState{}, err
	}
	if err := lockFile(f); err != nil {
		return fail(fmt.Errorf("audit log %s: %w", path, err))
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("audit log: %w", err))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return fail(fmt.Errorf("audit log %s: restrict mode to 0600: %w", path, err))
		}
	}
	tail, err := readTail(f, fi.Size())
	if err != nil {
		return fail(fmt.Errorf("audit log %s: %w", path, err))
	}
	st.size = fi.Size() - int64(len(tail.torn))
	if len(tail.torn) > 0 {
		st.repair, err = moveTornTail(f, path, st.size, tail.torn, now)
		if err != nil {
			return fail(err)
		}
	}
	if tail.last == nil {
		return f, st, nil
	}
	last, err := parseLine(tail.last)
	if err != nil {
		return fail(damaged(path, fmt.Sprintf("the last line is not a valid audit event (%v)", err)))
	}
	if tail.before != nil {
		before, err := parseLine(tail.before)
		switch {
		case err != nil:
			return fail(damaged(path, fmt.Sprintf("the line before the last is not a valid audit event (%v)", err)))
		case last.Seq != before.Seq+1 || last.Prev != lineHash(tail.before):
			return fail(damaged(path, "the last line does not chain to the line before it"))
		}
	}
	st.seq, st.prev = last.Seq, lineHash(tail.last)
	return f, st, nil
}

func damaged(path, what string) error {
	return fmt.Errorf("audit log %s: %s; the file was damaged or edited, so gatehouse will not extend its chain: "+
		"run `gatehouse audit verify`, move the file aside and restart", path, what)
}

// parseLine decodes one line as an Event with a plausible seq.
func parseLine(line []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return ev, err
	}
	if ev.Seq == 0 {
		return ev, errors.New("seq missing")
	}
	return ev, nil
}

// moveTornTail saves the bytes after the last newline to a sidecar file,
// truncates the log to its complete lines and returns the event to record.
func moveTornTail(f *os.File, path string, size int64, torn []byte, now time.Time) (*Event, error) {
	sidecar := path + ".torn-" + now.UTC().Format("20060102T150405.000000000Z")
	if err := writeFileSync(sidecar, torn); err != nil {
		return nil, fmt.Errorf("audit log %s: save torn final line: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		return nil, fmt.Errorf("audit log %s: truncate torn final line: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	sum := sha256.Sum256(torn)
	return &Event{
		Type:   RepairType,
		Action: "truncate torn final line",
		Reason: "the log ended with an incomplete line (the process stopped while writing it); it was moved to the sidecar file",
		Details: map[string]string{
			"sidecar": filepath.Base(sidecar),
			"bytes":   strconv.Itoa(len(torn)),
			"sha256":  hex.EncodeToString(sum[:]),
		},
	}, nil
}

// writeFileSync creates path 0600 with data and fsyncs it and its directory.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that a create or rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tail is the end of a log file.
type tail struct {
	torn   []byte // bytes after the last newline
	last   []byte // the last complete line, without newline (nil if none)
	before []byte // the line before it (nil if none)
}

// readTail reads the end of the file: the torn bytes after the last newline
// and the last two complete lines, growing its window up to a few maxLine.
func readTail(f io.ReaderAt, size int64) (tail, error) {
	for window := int64(64 << 10); ; window *= 4 {
		start := max(0, size-window)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return tail{}, err
		}
		t, complete := splitTail(buf, start == 0)
		if complete {
			if len(t.torn) > maxLine || len(t.last) > maxLine || len(t.before) > maxLine {
				return tail{}, fmt.Errorf("a line near the end is longer than %d bytes", maxLine)
			}
			return t, nil
		}
		if window > 4*maxLine {
			return tail{}, fmt.Errorf("a line near the end is longer than %d bytes", maxLine)
		}
	}
}

// splitTail splits buf, the end of a file, into torn bytes and the last two
// lines. It reports false if buf does not reach back far enough to be sure
// the lines are whole (atStart says buf begins at the start of the file).
func splitTail(buf []byte, atStart bool) (tail, bool) {
	var t tail
	cut := bytes.LastIndexByte(buf, '\n')
	if cut < 0 {
		t.torn = buf
		return t, atStart
	}
	t.torn = buf[cut+1:]
	body := buf[:cut]
	i := bytes.LastIndexByte(body, '\n')
	if i < 0 && !atStart {
		return t, false
	}
	t.last = body[i+1:]
	if i < 0 {
		return t, true
	}
	body = body[:i]
	j := bytes.LastIndexByte(body, '\n')
	if j < 0 && !atStart {
		return t, false
	}
	t.before = body[j+1:]
	return t, true
}
