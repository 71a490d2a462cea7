package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsDefaultAndKeyFileChecks(t *testing.T) {
	f := newFileFixture(t)
	c, err := LoadFile(writeFile(t, f.dir, "good.yaml", []byte(f.yaml)))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(f.data, DefaultMasterKeyName); c.Secrets.MasterKeyFile != want || !c.Secrets.MasterKeyDefault {
		t.Errorf("default master key = %q (default %v), want %q", c.Secrets.MasterKeyFile, c.Secrets.MasterKeyDefault, want)
	}

	raw := make([]byte, masterKeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, f.dir, "master.key", []byte(base64.StdEncoding.EncodeToString(raw)+"\n"))
	old := make([]byte, masterKeySize)
	if _, err := rand.Read(old); err != nil {
		t.Fatal(err)
	}
	prev := writeFile(t, f.dir, "old.key", []byte(base64.StdEncoding.EncodeToString(old)))
	short := writeFile(t, f.dir, "short.key", []byte(base64.StdEncoding.EncodeToString(raw[:16])))
	loose := writeFile(t, f.dir, "loose.key", []byte(base64.StdEncoding.EncodeToString(raw)))
	if err := os.Chmod(loose, 0o640); err != nil {
		t.Fatal(err)
	}
	c, err = LoadFile(writeFile(t, f.dir, "set.yaml", []byte(f.yaml+"secrets: {master_key_file: "+good+", previous_master_key_files: ["+prev+"]}\n")))
	if err != nil {
		t.Fatalf("configured keys: %v", err)
	}
	if c.Secrets.MasterKeyFile != good || c.Secrets.MasterKeyDefault {
		t.Errorf("configured master key = %+v", c.Secrets)
	}

	for _, tt := range []struct {
		name, secrets, wantPath, wantInMsg string
	}{
		{"missing", "master_key_file: /nonexistent/master.key", "secrets.master_key_file", "no such file"},
		{"group readable", "master_key_file: " + loose, "secrets.master_key_file", "has mode 0640"},
		{"short", "master_key_file: " + short, "secrets.master_key_file", "base64 of 32"},
		{"relative", "master_key_file: master.key", "secrets.master_key_file", "absolute"},
		{"previous missing", "master_key_file: " + good + ", previous_master_key_files: [/nonexistent/old]", "secrets.previous_master_key_files[0]", "no such file"},
		{"previous is current", "master_key_file: " + good + ", previous_master_key_files: [" + good + "]", "secrets.previous_master_key_files[0]", "current"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFile(writeFile(t, t.TempDir(), "g.yaml", []byte(f.yaml+"secrets: {"+tt.secrets+"}\n")))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("LoadFile = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Path == tt.wantPath && strings.Contains(p.Msg, tt.wantInMsg) {
					if p.Line != 8 {
						t.Errorf("problem %q at line %d, want 8", p, p.Line)
					}
					return
				}
			}
			t.Errorf("problems = %q, want one at %s containing %q", ps.Error(), tt.wantPath, tt.wantInMsg)
		})
	}
}
