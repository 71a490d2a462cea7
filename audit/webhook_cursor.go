package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// cursor records how much of the audit file the receiver has acknowledged.
type cursor struct {
	Offset int64  `json:"offset"` // bytes of the file delivered
	Seq    uint64 `json:"seq"`    // seq of the last delivered line
	Hash   string `json:"hash"`   // hash of the line ending at Offset ("" at 0)
}

// cursorPath names the cursor after the log file, so that one spool
// directory can serve several logs.
func cursorPath(spoolDir, logPath string) string {
	return filepath.Join(spoolDir, filepath.Base(logPath)+".webhook-cursor")
}

// loadCursor reads the saved cursor and checks that it still points at the
// end of the same line of this file. A missing cursor starts at the
// beginning; an invalid one is reported and also starts at the beginning:
// the receiver may see events twice (it drops them by replica and seq), but
// none is lost.
func (w *webhook) loadCursor(size int64) cursor {
	data, err := os.ReadFile(w.cpath)
	if errors.Is(err, fs.ErrNotExist) {
		return cursor{}
	}
	var c cursor
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err == nil {
		err = w.checkCursor(c, size)
	}
	if err != nil {
		w.logger.Warn("Audit webhook cursor is unusable; delivering the audit log from its start.",
			"cursor", w.cpath, "error", err)
		return cursor{}
	}
	return c
}

// checkCursor verifies that the line ending at c.Offset hashes to c.Hash.
func (w *webhook) checkCursor(c cursor, size int64) error {
	if c.Offset == 0 {
		return nil
	}
	if c.Offset < 0 || c.Offset > size {
		return fmt.Errorf("offset %d outside the log (%d bytes)", c.Offset, size)
	}
	t, err := readTail(io.NewSectionReader(w.file, 0, c.Offset), c.Offset)
	if err != nil {
		return err
	}
	if len(t.torn) != 0 || t.last == nil || lineHash(t.last) != c.Hash {
		return errors.New("it does not point at the end of the line it recorded (the log was replaced or edited)")
	}
	return nil
}

// saveCursor writes the cursor durably: temporary file, fsync, rename,
// fsync of the directory.
func (w *webhook) saveCursor() error {
	data, err := json.Marshal(w.cur)
	if err != nil {
		return err
	}
	tmp := w.cpath + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := writeFileSync(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, w.cpath); err != nil {
		return err
	}
	return syncDir(filepath.Dir(w.cpath))
}
