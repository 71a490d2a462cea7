package portal

import (
	"log/slog"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/web"
)

// Page security headers. They are set on every page the portal and the app
// gates render, here rather than by the front door, because an app host's
// other responses come from the application and must keep its own headers.
const pageCSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// renderer writes Gatehouse's pages, for the portal and the app gates
// alike: the security headers, no caching, a request ID on errors.
type renderer struct {
	pages  *web.Pages
	logger *slog.Logger
	// home and assets fill web.Page.Home and Assets on every page; "" keeps
	// the template's defaults (the portal's own root and static path).
	home, assets string
	// link and linkText end every message page.
	link, linkText string
}

// render writes page name with status. A template failure is logged and
// answered with a plain 500.
func (rd *renderer) render(w http.ResponseWriter, r *http.Request, status int, name string, pg web.Page) {
	if rd.home != "" {
		pg.Home = rd.home
	}
	if rd.assets != "" {
		pg.Assets = rd.assets
	}
	b, err := rd.pages.RenderBytes(name, pg)
	if err != nil {
		rd.logger.ErrorContext(r.Context(), "Render failed.", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if pg.RequestID != "" {
		h.Set("X-Request-Id", pg.RequestID)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// message renders a notice or error page. A status of 400 or more gets a
// request ID, logged together with err (err is never shown).
func (rd *renderer) message(w http.ResponseWriter, r *http.Request, status int, heading, text string, err error) {
	pg := web.Page{Title: heading, Body: web.Message{Status: status, Heading: heading, Text: text, Link: rd.link, LinkText: rd.linkText}}
	if status >= 400 {
		pg.RequestID = newRequestID()
		if err != nil {
			rd.logger.WarnContext(r.Context(), "Request failed.", "request_id", pg.RequestID,
				"path", r.URL.Path, "status", status, "error", err)
		}
	}
	rd.render(w, r, status, "error", pg)
}
