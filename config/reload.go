package config

import (
	"errors"
	"fmt"
	"reflect"
)

// ErrRestartRequired is wrapped by RestartRequired's error.
var ErrRestartRequired = errors.New("a restart is required to apply it")

// RestartRequired reports the settings that differ between old and cur and
// that a running Gatehouse cannot apply: listeners are bound, the data
// directory holds the open store, keys and audit log, and TLS, Redis, audit
// sinks, the recorder and the log format are set up once at start. A reload whose config
// changes any of them is refused whole, naming each, so that nothing is
// half applied. Both doors and serve ask this one function.
func RestartRequired(old, cur *Config) error {
	var errs []error
	for _, c := range []struct {
		path     string
		old, cur any
	}{
		{"listen.https", old.Listen.HTTPS, cur.Listen.HTTPS},
		{"listen.ssh", old.Listen.SSH, cur.Listen.SSH},
		{"listen.http", old.Listen.HTTP, cur.Listen.HTTP},
		{"listen.admin", old.Listen.Admin, cur.Listen.Admin},
		{"data_dir", old.DataDir, cur.DataDir},
		{"tls.mode", old.TLS.Mode, cur.TLS.Mode},
		{"tls.min_version", old.TLS.MinVersion, cur.TLS.MinVersion},
		{"tls.acme", old.TLS.ACME, cur.TLS.ACME},
		{"redis", old.Redis, cur.Redis},
		// The keyring is opened once; rotation is a restart (README).
		{"secrets", old.Secrets, cur.Secrets},
		{"audit", old.Audit, cur.Audit},
		{"log.format", old.Log.Format, cur.Log.Format},
		// The recorder encrypts to these recipients and holds these
		// people's recordings from the moment it is built.
		{"recording", old.Recording, cur.Recording},
	} {
		if !reflect.DeepEqual(c.old, c.cur) {
			errs = append(errs, fmt.Errorf("%s changed: %w", c.path, ErrRestartRequired))
		}
	}
	return errors.Join(errs...)
}
