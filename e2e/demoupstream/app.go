package main

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// app serves the demo pages.
type app struct {
	// verifier checks the assertion; nil means it is not checked (the page
	// says so).
	verifier *verifier
	logger   *slog.Logger
}

// pageData is what the page shows.
type pageData struct {
	Method, Path, Query    string
	User, Email, Groups    string
	HasAssertion, Verified bool
	VerifyError            string
	Claims                 *assertionClaims
	MFAAt, Expires         string
	CheckingDisabled       bool
	CookieNames            []string
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse demo app</title>
<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}
code,td{font-family:ui-monospace,monospace}td{padding:.2rem .6rem;vertical-align:top}
.ok{color:#060}.bad{color:#a00}</style></head><body>
<h1>Gatehouse demo app</h1>
{{if .Verified}}<p id="who" class="ok">Hello, <strong>{{.Claims.Email}}</strong>. Gatehouse vouches for you: the signed assertion verified.</p>
{{else if .CheckingDisabled}}<p id="who">Gatehouse says you are <strong>{{.User}}</strong> (assertion not checked: no -issuer).</p>
{{else if .HasAssertion}}<p id="who" class="bad">The identity assertion did NOT verify: {{.VerifyError}}</p>
{{else}}<p id="who" class="bad">No identity assertion: this request did not come through Gatehouse.</p>{{end}}
<h2>Request</h2>
<table><tr><td>method</td><td id="method">{{.Method}}</td></tr>
<tr><td>path</td><td id="path">{{.Path}}</td></tr>
<tr><td>query</td><td id="query">{{.Query}}</td></tr>
<tr><td>cookies seen</td><td id="cookies">{{range .CookieNames}}{{.}} {{else}}none{{end}}</td></tr></table>
<h2>Identity headers (as received)</h2>
<table><tr><td>X-Gatehouse-User</td><td id="h-user">{{.User}}</td></tr>
<tr><td>X-Gatehouse-Email</td><td id="h-email">{{.Email}}</td></tr>
<tr><td>X-Gatehouse-Groups</td><td id="h-groups">{{.Groups}}</td></tr></table>
{{if .Verified}}<h2>Verified assertion</h2>
<table><tr><td>iss</td><td>{{.Claims.Issuer}}</td></tr>
<tr><td>aud</td><td>{{range .Claims.Audience}}{{.}} {{end}}</td></tr>
<tr><td>sub</td><td id="sub">{{.Claims.Subject}}</td></tr>
<tr><td>groups</td><td id="groups">{{range .Claims.Groups}}{{.}} {{end}}</td></tr>
<tr><td>last security-key check</td><td>{{.MFAAt}}</td></tr>
<tr><td>expires</td><td>{{.Expires}}</td></tr></table>{{end}}
<p>WebSocket echo: <code>/ws</code> (sends back every text message).</p>
</body></html>
`))

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Write([]byte("ok\n"))
		return
	case "/ws":
		a.echo(w, r)
		return
	}
	d := pageData{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		User: r.Header.Get("X-Gatehouse-User"), Email: r.Header.Get("X-Gatehouse-Email"),
		Groups:           r.Header.Get("X-Gatehouse-Groups"),
		CheckingDisabled: a.verifier == nil,
	}
	for _, c := range r.Cookies() {
		d.CookieNames = append(d.CookieNames, c.Name) // names only: values are secrets
	}
	if tok := r.Header.Get("X-Gatehouse-Jwt-Assertion"); tok != "" && a.verifier != nil {
		d.HasAssertion = true
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		c, err := a.verifier.Verify(ctx, tok)
		cancel()
		if err != nil {
			d.VerifyError = err.Error()
			a.logger.WarnContext(r.Context(), "assertion did not verify", "error", err, "path", r.URL.Path)
		} else {
			d.Verified, d.Claims = true, c
			if c.MFAAt > 0 {
				d.MFAAt = time.Unix(c.MFAAt, 0).UTC().Format(time.RFC3339)
			}
			d.Expires = c.Expiry.Time().UTC().Format(time.RFC3339)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := page.Execute(w, d); err != nil {
		a.logger.ErrorContext(r.Context(), "render page", "error", err)
	}
}

// echo is a WebSocket echo for text and binary messages, for showing that
// WebSockets pass through Gatehouse. Messages are limited to 64 KiB.
func (a *app) echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil) // checks Origin against Host
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 10)
	ctx := r.Context()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure && !strings.Contains(err.Error(), "EOF") {
				a.logger.DebugContext(ctx, "websocket closed", "error", err)
			}
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}
