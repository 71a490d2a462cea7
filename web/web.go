// Package web holds Gatehouse's own pages: html/template templates and the
// static assets they use (a small stylesheet and the WebAuthn script), all
// embedded in the binary. The pages carry no inline script or style, so the
// portal can send a Content-Security-Policy of default-src 'self'; any state
// a script needs travels in data- attributes.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// StaticPrefix is the URL path under which Static serves the assets.
const StaticPrefix = "/static/"

// Pages holds every page template, each parsed together with the shared
// layout. It is safe for concurrent use.
type Pages struct {
	pages   map[string]*template.Template
	version string // short hash of the static assets, for cache busting
}

// Parse parses the embedded templates. It fails if any template is broken,
// which a test catches before a build ever ships.
func Parse() (*Pages, error) {
	version, err := staticVersion()
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		// static returns the URL of an asset under prefix (StaticPrefix
		// when empty), versioned by content so it can be cached for long.
		"static": func(prefix, name string) string {
			if prefix == "" {
				prefix = StaticPrefix
			}
			return prefix + name + "?v=" + version
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &Pages{pages: map[string]*template.Template{}, version: version}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, n); err != nil {
			return nil, fmt.Errorf("parse %s: %w", base, err)
		}
		p.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// Names lists the pages Parse found, sorted.
func (p *Pages) Names() []string {
	out := make([]string, 0, len(p.pages))
	for n := range p.pages {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Render executes page name with data into a buffer and only then writes it
// to w, so a template error never sends half a page.
func (p *Pages) Render(w io.Writer, name string, data any) error {
	t, ok := p.pages[name]
	if !ok {
		return fmt.Errorf("web: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("web: render %s: %w", name, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// RenderBytes executes page name with data and returns the HTML.
func (p *Pages) RenderBytes(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := p.Render(&buf, name, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Static returns a handler for the embedded assets mounted at StaticPrefix.
func Static() http.Handler { return StaticAt(StaticPrefix) }

// StaticAt returns a handler for the embedded assets mounted at prefix,
// which starts and ends with "/". Directory listings are refused and every
// response may be cached, since the URLs carry a content version.
func StaticAt(prefix string) http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		// fs.Sub fails only on an invalid path, and "static" is valid.
		panic(err)
	}
	files := http.StripPrefix(prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || name == "" || strings.HasSuffix(name, "/") || strings.Contains(name, "..") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// The player's files, copied into static/vendor/ by
// scripts/install-deps.sh from the asciinema-player npm package that
// web/player/package-lock.json pins. They are not committed (another
// project's build output), so a plain `go build` on a fresh clone embeds
// only the directory's README, and the player page says so.
const (
	PlayerScript = "vendor/asciinema-player.min.js"
	PlayerStyle  = "vendor/asciinema-player.css"
)

// PlayerBuilt reports whether the player's files are embedded.
func PlayerBuilt() bool {
	for _, name := range []string{PlayerScript, PlayerStyle} {
		if _, err := fs.Stat(staticFS, "static/"+name); err != nil {
			return false
		}
	}
	return true
}

// staticVersion hashes every static asset into a short version string.
func staticVersion() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash static assets: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
