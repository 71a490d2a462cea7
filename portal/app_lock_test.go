package portal

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/identity"
)

func TestAppCacheForgetUser(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newAppCache(time.Hour)
	c.put("a1", authz.Subject{Email: "Ann@Example.com"}, "h1", "p1", now, time.Time{})
	c.put("a2", authz.Subject{Email: "ann@example.com"}, "h2", "p2", now, time.Time{})
	c.put("b1", authz.Subject{Email: "bob@example.com"}, "h3", "p3", now, time.Time{})
	c.forgetUser("") // names nobody
	if len(c.m) != 3 {
		t.Fatalf("forgetUser(\"\") dropped entries")
	}
	// A lock message carries the email lower-cased.
	c.forgetUser("ann@example.com")
	for key, want := range map[string]bool{"a1": false, "a2": false, "b1": true} {
		if _, ok := c.get(key, now); ok != want {
			t.Errorf("after forgetUser(ann) get(%s) found = %v, want %v", key, ok, want)
		}
	}
}

// A lock published on any replica reaches every replica's gates
// (ForgetUser): the locked person's next request is refused at once,
// however long the cache.
func TestAppLockEndsCachedSession(t *testing.T) {
	e := newPTEnvWith(t, ptOptions{cacheTTL: time.Hour})
	c := e.client()
	e.echo(e.login(c, newPTKey(), "https://app.test/", "Ann@Example.com", "eng"))
	appCookie := e.cookie(c, "app.test")
	e.echo(e.get(c, "https://app.test/cached")) // fills the cache

	keys, err := identity.NewKeyBindings(e.deps)
	if err != nil {
		t.Fatal(err)
	}
	locks, err := identity.NewLocks(e.deps, e.sessions, keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := locks.Lock(t.Context(), "ann@example.com", "sec@example.com", "incident"); err != nil {
		t.Fatal(err)
	}
	replay := func() *http.Response {
		res := e.do(e.client(), http.MethodGet, "https://app.test/secret", nil, map[string]string{"Cookie": SessionCookie + "=" + appCookie})
		return res.Response
	}
	// The store refuses the session now; only the cache still knows it.
	if res := replay(); res.StatusCode != http.StatusOK {
		t.Fatalf("before ForgetUser the cached session got %d; the test needs a cache hit", res.StatusCode)
	}
	for _, a := range e.apps {
		a.ForgetUser(string(identity.PersonLock("Ann@Example.com").Message()))
	}
	if res := replay(); res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://gate.test/auth/login") {
		t.Errorf("locked person's cookie after ForgetUser = %d to %q, want the login", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestAppCacheFillAfterForget checks that a lookup which read the store
// before a lock's forget does not cache its (now revoked) session after it.
func TestAppCacheFillAfterForget(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newAppCache(time.Hour)
	ann := authz.Subject{Email: "ann@example.com"}
	gen := c.generation() // the lookup starts...
	c.forgetUser("ann@example.com")
	c.fill(gen, "a1", ann, "h1", "p1", now, time.Time{}) // ...and ends after the lock
	if _, ok := c.get("a1", now); ok {
		t.Error("a session read before the lock was cached after it")
	}
	c.fill(c.generation(), "a1", ann, "h1", "p1", now, time.Time{})
	if _, ok := c.get("a1", now); !ok {
		t.Error("a lookup with no forget since was not cached")
	}
}

// TestAppClientGoneIs499 checks that a request whose client hung up while
// its session was being looked up is answered 499, not counted as a 503
// outage.
func TestAppClientGoneIs499(t *testing.T) {
	e := newPTEnv(t)
	val, err := e.codec.Seal(SessionCookie, "app.test", "some-session")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodGet, "https://app.test/x", nil).WithContext(ctx)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: val})
	w := httptest.NewRecorder()
	e.apps["app.test"].ServeHTTP(w, r)
	if w.Code != statusClientClosed {
		t.Errorf("status = %d, want %d", w.Code, statusClientClosed)
	}
}

// TestAppJoinedLookupsKeepOwners hammers the gate with many people at once,
// every request a cache miss (the cache is off here), so that concurrent
// lookups are joined: each answer must still carry its asker's identity.
func TestAppJoinedLookupsKeepOwners(t *testing.T) {
	e := newPTEnv(t)
	const people = 6
	clients := make([]*http.Client, people)
	for i := range clients {
		clients[i] = e.client()
		e.echo(e.login(clients[i], newPTKey(), "https://app.test/", fmt.Sprintf("p%d@example.com", i), "eng"))
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		want := fmt.Sprintf("p%d@example.com", i)
		for range 4 {
			wg.Go(func() {
				for range 10 {
					res := e.get(c, "https://app.test/who")
					var v ptEcho
					if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(res.body), &v) != nil {
						t.Errorf("%s: status %d", want, res.StatusCode)
						return
					}
					if got := v.Headers["X-Gatehouse-User"]; len(got) != 1 || got[0] != want {
						t.Errorf("%s got an answer for %v", want, got)
						return
					}
				}
			})
		}
	}
	wg.Wait()
}
