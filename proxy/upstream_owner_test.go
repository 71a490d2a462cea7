package proxy

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/authz"
)

// TestHopOwnerUnderLoad hammers one route with many people at once, over
// HTTP/1.1 and HTTP/2, through the front, a gate and the hop with its
// shared upstream connection pool and assertion cache, and checks that
// every response belongs to the person who asked: the identity header,
// the assertion's subject and the request the upstream answered all name
// the requester. A transport or cache that mixed up two people's
// requests would hand one person's page to another.
func TestHopOwnerUnderLoad(t *testing.T) {
	const people, perPerson = 16, 10
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := payloadEmail(r.Header.Get(HeaderAssertion))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The answer names who the upstream was told asked, and which
		// request it answered.
		fmt.Fprintf(w, "%s|%s|%s", r.Header.Get(HeaderUser), claims, r.URL.Query().Get("req"))
	})
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	cfg := frontTestConfig(t)
	cfg.Routes[0].Upstream = up.URL
	hop, err := NewUpstream(cfg.Routes[0], upSigner(t, upBolt(t), time.Now), upTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hop.Close() })
	// The gate admits whoever the test says the request is from, with the
	// same MFA time for everyone, so that only the email tells two
	// people's cached assertions apart.
	mfaAt := time.Now().Add(-time.Minute)
	gate := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := authz.Subject{Email: r.Header.Get("X-Test-Person"), Groups: []string{"eng"}, MFAAt: mfaAt}
		hop.ServeHTTP(w, r.WithContext(assertion.WithSubject(r.Context(), who)))
	})
	f := runFront(t, FrontConfig{Config: cfg, Apps: map[string]http.Handler{"app.test": gate}})
	roots := selfSignedPool(t, f.dataDir)
	h2 := frontClient(f, roots, "app.test")
	h1 := frontClient(f, roots, "app.test")
	h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	h1.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}

	var wg sync.WaitGroup
	errs := make(chan error, people*perPerson)
	for p := range people {
		person := fmt.Sprintf("person%02d@example.com", p)
		client := h1
		if p%2 == 0 {
			client = h2
		}
		wg.Go(func() {
			for i := range perPerson {
				req := fmt.Sprintf("%s-%d", person, i)
				r, _ := http.NewRequest(http.MethodGet, "https://app.test/page?req="+req, nil)
				r.Header.Set("X-Test-Person", person)
				res, err := client.Do(r)
				if err != nil {
					errs <- err
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if want := person + "|" + person + "|" + req; res.StatusCode != http.StatusOK || string(body) != want {
					errs <- fmt.Errorf("%s got %d %q, want 200 %q", req, res.StatusCode, body, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// payloadEmail returns the email claim of a JWT without verifying it (the
// assertion tests verify signatures; this one is about ownership).
func payloadEmail(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("assertion %q is not a JWT", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Email string `json:"email"`
		Sub   string `json:"sub"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	if c.Email != c.Sub {
		return "", fmt.Errorf("assertion email %q, subject %q", c.Email, c.Sub)
	}
	return c.Email, nil
}
