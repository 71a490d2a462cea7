package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// TestREADMEDocumentsEveryConfigKey keeps the README's configuration
// reference complete: every YAML key of config.Config must appear in it in
// backquotes, top-level keys with their full dotted path (`tls.acme.email`)
// and keys inside list items relative to the item (`paths[].prefix` for
// routes[].paths[].prefix). An allow list counts as one key.
func TestREADMEDocumentsEveryConfigKey(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	keys := configKeys(reflect.TypeOf(config.Config{}), "")
	if len(keys) < 50 {
		t.Fatalf("found only %d config keys; the walk is broken", len(keys))
	}
	for _, k := range keys {
		doc := k
		if _, rel, ok := strings.Cut(k, "[]."); ok {
			doc = rel
		}
		if !strings.Contains(string(readme), "`"+doc) {
			t.Errorf("README.md does not document config key %s (looked for `%s)", k, doc)
		}
	}
}

// configKeys lists the YAML key paths under t, with "[]" after lists.
func configKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeOf(config.Allow{}) || ft == reflect.TypeOf(config.Duration(0)):
			keys = append(keys, path)
		case ft.Kind() == reflect.Struct:
			keys = append(keys, configKeys(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, configKeys(ft.Elem(), path+"[].")...)
		default:
			keys = append(keys, path)
		}
	}
	return keys
}
