package portal

import (
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// Session cache bounds.
const (
	// DefaultAppCacheTTL is how long an app host trusts a verified cookie
	// without asking the store again.
	DefaultAppCacheTTL = time.Second
	// appCacheMax bounds the number of cached cookies per app host.
	appCacheMax = 1 << 16
)

// appCache remembers, for a short TTL, which session a sealed cookie value
// stands for, so that the hot path of an app host is one map lookup instead
// of an AES-GCM open and a store read.
//
// The trade-off: a session revoked on the store keeps working on this
// replica until its entry expires (the TTL) or is forgotten. forget drops
// entries at once when this replica learns of a revocation: a sign-out on
// its own portal (NewWeb connects it), and a lock placed on any replica
// (serve calls App.ForgetUser for each message on identity.LockChannel, on
// every replica), so a locked person's next request is refused everywhere.
// What remains is up to one TTL for a revocation that publishes nothing (a
// sign-out on another replica) or a lock message the store dropped (Redis
// keeps none for a subscriber that is reconnecting); the TTL is kept at
// one second for those. Only successful lookups are cached: a forged or
// revoked cookie always reaches the codec and the store, so the cache
// cannot be used to extend access.
type appCache struct {
	ttl time.Duration
	mu  sync.RWMutex          // guards m and gen
	m   map[string]cacheEntry // sealed cookie value -> session
	// gen counts forgets. A lookup that read the store before a forget
	// (a lock, a sign-out) must not cache what it read after it: fill
	// drops an entry whose lookup began in an older generation.
	gen uint64
}

type cacheEntry struct {
	who     authz.Subject
	handle  string    // the session's handle, for forget
	parent  string    // its portal session's handle, for forget
	expires time.Time // entry's end: the sooner of now+ttl and the session's end
}

func newAppCache(ttl time.Duration) *appCache {
	return &appCache{ttl: ttl, m: map[string]cacheEntry{}}
}

// get returns the cached session for the cookie value, if still valid.
func (c *appCache) get(value string, now time.Time) (cacheEntry, bool) {
	if c.ttl <= 0 {
		return cacheEntry{}, false
	}
	c.mu.RLock()
	e, ok := c.m[value]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return cacheEntry{}, false
	}
	return e, true
}

// generation is the count of forgets so far; take it before the lookup
// whose result fill caches.
func (c *appCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// fill caches a verified session (putLocked) for a lookup that began in
// generation gen: if a forget came since, the result may predate a
// revocation and is not cached.
func (c *appCache) fill(gen uint64, value string, who authz.Subject, handle, parent string, now, end time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.putLocked(value, who, handle, parent, now, end)
}

// putLocked caches a verified session until the sooner of now+ttl and
// end. c.mu must be held.
func (c *appCache) putLocked(value string, who authz.Subject, handle, parent string, now, end time.Time) {
	if c.ttl <= 0 {
		return
	}
	exp := now.Add(c.ttl)
	if !end.IsZero() && end.Before(exp) {
		exp = end
	}
	if len(c.m) >= appCacheMax {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= appCacheMax {
			clear(c.m)
		}
	}
	c.m[value] = cacheEntry{who: who, handle: handle, parent: parent, expires: exp}
}

// forgetUser drops every entry of the person with email, whatever the
// case of its letters (identity lower-cases emails; the IdP may not).
func (c *appCache) forgetUser(email string) {
	email = strings.TrimSpace(email)
	if email == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.m {
		if strings.EqualFold(strings.TrimSpace(e.who.Email), email) {
			delete(c.m, k)
		}
	}
}

// forget drops every entry of the session with handle, or made from the
// portal session with that handle, and (when email is set) every entry of
// that person: the revocation takes effect at once on this replica.
func (c *appCache) forget(handle, email string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.m {
		if (handle != "" && (e.handle == handle || e.parent == handle)) || (email != "" && e.who.Email == email) {
			delete(c.m, k)
		}
	}
}
