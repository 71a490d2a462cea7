package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// masterKeySize is secrets.KeySize (config imports no project package).
const masterKeySize = 32

// secrets checks the shape of the secrets section: absolute paths, and no
// file listed both as current and previous key.
func (v *validator) secrets(s Secrets) {
	v.absFile("secrets.master_key_file", s.MasterKeyFile, false)
	for i, f := range s.PreviousMasterKeyFiles {
		p := fmt.Sprintf("secrets.previous_master_key_files[%d]", i)
		v.absFile(p, f, true)
		if f != "" && filepath.Clean(f) == filepath.Clean(s.MasterKeyFile) {
			v.addf(p, "is the current master_key_file")
		}
	}
}

// masterKeys checks the key files as package secrets will read them:
// regular, not readable by group or others, the base64 of 32 bytes. The
// default key in data_dir may be missing (serve creates it); a configured
// one may not.
func (v *validator) masterKeys(s Secrets) {
	v.masterKey("secrets.master_key_file", s.MasterKeyFile, s.MasterKeyDefault)
	for i, f := range s.PreviousMasterKeyFiles {
		v.masterKey(fmt.Sprintf("secrets.previous_master_key_files[%d]", i), f, false)
	}
}

func (v *validator) masterKey(path, file string, mayBeMissing bool) {
	if !checkable(file) {
		return
	}
	fi, err := os.Stat(file)
	if mayBeMissing && errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		v.addf(path, "%s has mode %04o: group and others must have no access (chmod 600 %s)", file, fi.Mode().Perm(), file)
		return
	}
	b, err := readFile(file, maxSecretSize)
	if err != nil {
		v.addf(path, "%v", err)
		return
	}
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b))); err != nil || len(raw) != masterKeySize {
		v.addf(path, "%s must hold the base64 of %d random bytes (openssl rand -base64 %d)", file, masterKeySize, masterKeySize)
	}
}
