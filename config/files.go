package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Limits on the files a config names. Anything larger is surely the wrong
// file, and reading it whole could exhaust memory.
const (
	maxSecretSize = 4096    // client secret, passwords, HMAC keys
	maxPEMSize    = 4 << 20 // certificate chains and CA bundles
)

// controlSocketName is the admin socket's name in data_dir (it must equal
// control.SocketName; config imports no project package).
const controlSocketName = "control.sock"

// maxUnixPath is the longest path a Unix socket can bind on Linux (108
// bytes of sun_path, one of them the terminating NUL).
const maxUnixPath = 107

// CheckFiles checks what c names on this machine, the way serve will use
// it: the TLS certificate and key are a valid, current, matching pair; CA
// files are readable PEM with at least one certificate; secret files are
// readable and not empty; data_dir exists as a private directory of this
// user or can be created. It returns every problem as Problems (with
// paths, without line numbers), or nil. LoadFile runs it after Validate;
// it skips values Validate refuses (relative paths, say).
func (c *Config) CheckFiles() error {
	if ps := c.checkFiles(time.Now()); len(ps) > 0 {
		return Problems(ps)
	}
	return nil
}

func (c *Config) checkFiles(now time.Time) []Problem {
	v := &validator{}
	v.dataDir(c.DataDir)
	if c.Recording.Dir != c.DataDir && !strings.HasPrefix(c.Recording.Dir, c.DataDir+string(filepath.Separator)) {
		v.privateDir("recording.dir", c.Recording.Dir)
	}
	v.masterKeys(c.Secrets)
	switch c.TLS.Mode {
	case TLSModeFiles:
		v.keyPair(c.TLS.CertFile, c.TLS.KeyFile, now)
	case TLSModeACME:
		for i, f := range c.TLS.ACME.CARoots {
			v.caFile(fmt.Sprintf("tls.acme.ca_roots[%d]", i), f)
		}
	}
	if c.Redis != nil {
		v.secretFile("redis.password_file", c.Redis.PasswordFile)
		if c.Redis.Sentinel != nil {
			v.secretFile("redis.sentinel.password_file", c.Redis.Sentinel.PasswordFile)
		}
		if c.Redis.TLS != nil {
			v.caFile("redis.tls.ca_file", c.Redis.TLS.CAFile)
		}
	}
	v.secretFile("sso.client_secret_file", c.SSO.ClientSecretFile)
	for i, f := range c.SSO.CARoots {
		v.caFile(fmt.Sprintf("sso.ca_roots[%d]", i), f)
	}
	if w := c.Audit.Webhook; w != nil {
		v.secretFile("audit.webhook.secret_file", w.SecretFile)
	}
	return v.ps
}

// checkable reports whether file is a path Validate accepts; the others
// are reported there.
func checkable(file string) bool { return file != "" && filepath.IsAbs(file) }

// readFile reads a regular file of at most max bytes. A FIFO or device
// (/dev/zero, say) would block or never end.
func readFile(file string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, max)
	}
	return b, nil
}

// secretFile checks that a secret file is readable and holds a secret.
func (v *validator) secretFile(path, file string) {
	if !checkable(file) {
		return
	}
	b, err := readFile(file, maxSecretSize)
	switch {
	case err != nil:
		v.addf(path, "%v", err)
	case strings.TrimSpace(string(b)) == "":
		v.addf(path, "%s: empty", file)
	}
}

// caFile checks that file holds at least one PEM certificate.
func (v *validator) caFile(path, file string) {
	if !checkable(file) {
		return
	}
	b, err := readFile(file, maxPEMSize)
	if err != nil {
		v.addf(path, "%v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		v.addf(path, "no PEM certificate in %s", file)
	}
}

// keyPair checks the certificate and key of tls.mode files with
// crypto/tls, as the front door loads them: each readable, a matching
// pair, the certificate valid now.
func (v *validator) keyPair(certFile, keyFile string, now time.Time) {
	if !checkable(certFile) || !checkable(keyFile) {
		return
	}
	certPEM, cerr := readFile(certFile, maxPEMSize)
	if cerr != nil {
		v.addf("tls.cert_file", "%v", cerr)
	}
	keyPEM, kerr := readFile(keyFile, maxPEMSize)
	if kerr != nil {
		v.addf("tls.key_file", "%v", kerr)
	}
	if cerr != nil || kerr != nil {
		return
	}
	// Name the file at fault: the certificate alone first, then the pair.
	if err := firstCertificate(certPEM); err != nil {
		v.addf("tls.cert_file", "%s: %v", certFile, err)
		return
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		v.addf("tls.key_file", "%s: %v", keyFile, err)
		return
	}
	switch {
	case now.After(c.Leaf.NotAfter):
		v.addf("tls.cert_file", "certificate in %s expired at %s", certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.Leaf.NotBefore):
		v.addf("tls.cert_file", "certificate in %s is not valid before %s", certFile, c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
}

// firstCertificate parses the first certificate of a PEM chain, as
// crypto/tls does for the leaf.
func firstCertificate(pemData []byte) error {
	for {
		var b *pem.Block
		b, pemData = pem.Decode(pemData)
		if b == nil {
			return errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(b.Bytes)
			return err
		}
	}
}

// dataDir checks that serve can use dir: an existing one must be a
// directory of this user that group and others cannot reach (it holds keys,
// sessions and recordings) and that this process can write; a missing one
// must be creatable. It creates nothing: check-config changes no state.
func (v *validator) dataDir(dir string) {
	if !checkable(dir) {
		return
	}
	if n := len(filepath.Join(dir, controlSocketName)); n > maxUnixPath {
		v.addf("data_dir", "%s is too long: the control socket path in it would be %d bytes, more than the %d a Unix socket allows", dir, n, maxUnixPath)
	}
	v.privateDir("data_dir", dir)
}

// privateDir checks the directory at key as dataDir does: it holds secrets
// or recordings, so only this user may reach it.
func (v *validator) privateDir(key, dir string) {
	if !checkable(dir) {
		return
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		v.creatable(key, dir)
		return
	}
	if err != nil {
		v.addf(key, "%v", err)
		return
	}
	if !fi.IsDir() {
		v.addf(key, "%s: not a directory", dir)
		return
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		v.addf(key, "%s has mode %04o: group and others must have no access (chmod 700 %s)", dir, perm, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		v.addf(key, "%s is owned by uid %d, not by this process (uid %d)", dir, st.Uid, os.Geteuid())
	} else if syscall.Access(dir, accessR|accessW|accessX) != nil {
		v.addf(key, "%s is not writable by this process", dir)
	}
}

// The mode bits of access(2) (R_OK, W_OK, X_OK), which package syscall
// does not name.
const (
	accessR = 0x4
	accessW = 0x2
	accessX = 0x1
)

// creatable checks that serve could create the missing dir: its nearest
// existing ancestor is a directory this process may write.
func (v *validator) creatable(key, dir string) {
	parent := filepath.Dir(dir)
	for {
		fi, err := os.Stat(parent)
		if errors.Is(err, fs.ErrNotExist) && parent != filepath.Dir(parent) {
			parent = filepath.Dir(parent)
			continue
		}
		switch {
		case err != nil:
			v.addf(key, "%s cannot be created: %v", dir, err)
		case !fi.IsDir():
			v.addf(key, "%s cannot be created: %s is not a directory", dir, parent)
		case syscall.Access(parent, accessW|accessX) != nil:
			v.addf(key, "%s cannot be created: %s is not writable by this process", dir, parent)
		}
		return
	}
}
