package portal

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// put caches an entry as a lookup that no forget raced would (fill in the
// current generation).
func (c *appCache) put(value string, who authz.Subject, handle, parent string, now, end time.Time) {
	c.fill(c.generation(), value, who, handle, parent, now, end)
}

func TestAppCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ann := authz.Subject{Email: "ann@example.com"}
	bob := authz.Subject{Email: "bob@example.com"}
	c := newAppCache(time.Second)
	c.put("a1", ann, "app-a1", "portal-a", now, now.Add(time.Hour))
	c.put("a2", ann, "app-a2", "portal-a2", now, now.Add(time.Hour))
	c.put("b1", bob, "app-b1", "portal-b", now, now.Add(300*time.Millisecond))

	tests := []struct {
		name  string
		key   string
		at    time.Duration
		found bool
	}{
		{"fresh", "a1", 0, true},
		{"just before the TTL", "a1", 999 * time.Millisecond, true},
		{"at the TTL", "a1", time.Second, false},
		{"session ends before the TTL", "b1", 300 * time.Millisecond, false},
		{"unknown", "zz", 0, false},
	}
	for _, tt := range tests {
		if _, ok := c.get(tt.key, now.Add(tt.at)); ok != tt.found {
			t.Errorf("%s: get(%q, +%v) found = %v, want %v", tt.name, tt.key, tt.at, ok, tt.found)
		}
	}
	c.forget("portal-a", "") // by portal handle: drops the app session made from it
	if _, ok := c.get("a1", now); ok {
		t.Errorf("forget(portal handle) kept its app session")
	}
	if _, ok := c.get("a2", now); !ok {
		t.Errorf("forget(portal handle) dropped another session")
	}
	c.forget("", "ann@example.com")
	if _, ok := c.get("a2", now); ok {
		t.Errorf("forget(email) kept that person's session")
	}
	if _, ok := c.get("b1", now); !ok {
		t.Errorf("forget(email) dropped another person's session")
	}

	off := newAppCache(-1)
	off.put("a1", ann, "h", "p", now, time.Time{})
	if _, ok := off.get("a1", now); ok {
		t.Errorf("a disabled cache returned an entry")
	}

	// The cache is bounded.
	big := newAppCache(time.Second)
	for i := 0; i < appCacheMax+10; i++ {
		big.put(fmt.Sprint(i), ann, "h", "p", now, time.Time{})
	}
	if n := len(big.m); n > appCacheMax {
		t.Errorf("cache holds %d entries, want at most %d", n, appCacheMax)
	}
	if _, ok := big.get(fmt.Sprint(appCacheMax+9), now); !ok {
		t.Errorf("newest entry missing after the cache filled")
	}
}
