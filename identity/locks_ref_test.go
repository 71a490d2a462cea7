package identity

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/store"
)

// fp1 and fp2 are fingerprints as ssh-keygen -lf prints them.
const (
	fp1 = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
	fp2 = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
)

func TestLockMessageRoundTrip(t *testing.T) {
	for _, r := range []LockRef{PersonLock("ann@example.com"), KeyLock(fp2), TargetLock("prod-db")} {
		if got := ParseLockMessage(r.Message()); got != r {
			t.Errorf("ParseLockMessage(%q) = %v, want %v", r.Message(), got, r)
		}
	}
	// What older publishers sent: the bare email.
	if got := ParseLockMessage([]byte("bob@example.com")); got != PersonLock("bob@example.com") {
		t.Errorf("bare email parsed as %v", got)
	}
	// An email that starts like a key message is still an email.
	if got := ParseLockMessage([]byte("key/x@example.com")); got.Kind != LockPerson {
		t.Errorf("email key/x@example.com parsed as %v", got)
	}
}

func TestLockKeyAndTarget(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	k, _ := NewKeyBindings(e.d)
	l, err := NewLocks(e.d, m, k)
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx()
	ann := authz.Subject{Email: "ann@example.com", MFAAt: e.clk.Now()}
	for _, fp := range []string{fp1, fp2} {
		if err := k.Bind(ctx, fp, ann, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notes, err := e.st.Subscribe(sctx, LockChannel)
	if err != nil {
		t.Fatal(err)
	}

	for _, bad := range []LockRef{KeyLock("SHA256:short"), KeyLock("MD5:aa"), TargetLock("Prod/x"), PersonLock("ann"), {Kind: "other", Name: "x"}} {
		if err := l.Place(ctx, bad, "sec@example.com", "r"); err == nil {
			t.Errorf("Place(%v) accepted", bad)
		}
	}
	if err := l.Place(ctx, KeyLock(fp2), "sec@example.com", "key leaked"); err != nil {
		t.Fatalf("Place(key): %v", err)
	}
	if err := l.Place(ctx, TargetLock("prod-db"), "sec@example.com", "db breach"); err != nil {
		t.Fatalf("Place(target): %v", err)
	}
	for _, want := range []string{"key/" + fp2, "target/prod-db"} {
		select {
		case msg := <-notes:
			if string(msg) != want {
				t.Errorf("lock message = %q, want %q", msg, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no message %q on the lock channel", want)
		}
	}
	// The locked key lost its binding; the person's other key kept its.
	if _, err := k.Lookup(ctx, fp2); !errors.Is(err, ErrNotFound) {
		t.Errorf("locked key still bound: %v", err)
	}
	if _, err := k.Lookup(ctx, fp1); err != nil {
		t.Errorf("other key unbound: %v", err)
	}
	// Neither lock locks the person.
	if locked, err := l.Locked(ctx, "ann@example.com"); err != nil || locked {
		t.Errorf("Locked(ann) = %v, %v", locked, err)
	}
	if err := l.Lock(ctx, "bob@example.com", "sec@example.com", "r"); err != nil {
		t.Fatal(err)
	}

	got, held, err := l.Held(ctx, PersonLock("ann@example.com"), KeyLock(fp1), TargetLock("prod-db"))
	if err != nil || !held || got != TargetLock("prod-db") {
		t.Errorf("Held = %v, %v, %v; want target prod-db", got, held, err)
	}
	if _, held, err := l.Held(ctx, PersonLock("ann@example.com"), KeyLock(fp1), TargetLock("web")); err != nil || held {
		t.Errorf("Held(free) = %v, %v", held, err)
	}

	all, err := l.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		email, fp, target string
		want              LockRef
		held              bool
	}{
		{"ann@example.com", fp1, "web", LockRef{}, false},
		{"ann@example.com", fp2, "web", KeyLock(fp2), true},
		{"ann@example.com", fp1, "prod-db", TargetLock("prod-db"), true},
		{"Bob@Example.com", fp1, "", PersonLock("bob@example.com"), true},
		{"", "", "", LockRef{}, false},
	}
	for _, tt := range tests {
		if got, held := all.Holds(tt.email, tt.fp, tt.target); got != tt.want || held != tt.held {
			t.Errorf("Holds(%q, %q, %q) = %v, %v; want %v, %v", tt.email, tt.fp, tt.target, got, held, tt.want, tt.held)
		}
	}
	if all.Len() != 3 {
		t.Errorf("All holds %d locks, want 3", all.Len())
	}
	evs := e.audit.find(EventLock, "allow")
	if len(evs) != 3 || evs[0].Resource != "key:"+fp2 || evs[0].Actor != "sec@example.com" || evs[0].Reason != "key leaked" || evs[1].Resource != "target:prod-db" {
		t.Errorf("lock audit = %+v", evs)
	}

	if err := l.Lift(ctx, KeyLock(fp2), "sec@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := l.Lift(ctx, TargetLock("prod-db"), "sec@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := l.Held(ctx, KeyLock(fp2), TargetLock("prod-db")); held {
		t.Error("still locked after Lift")
	}
	if evs := e.audit.find(EventUnlock, "allow"); len(evs) != 2 || evs[0].Resource != "key:"+fp2 {
		t.Errorf("unlock audit = %+v", evs)
	}
}

// failGetStore fails every read.
type failGetStore struct{ *store.Bolt }

func (f failGetStore) Get(context.Context, string) ([]byte, error) {
	return nil, errors.New("store down")
}

func (f failGetStore) GetMany(context.Context, ...string) ([][]byte, error) {
	return nil, errors.New("store down")
}

func (f failGetStore) List(context.Context, string) ([]store.KV, error) {
	return nil, errors.New("store down")
}

func TestLocksStoreDown(t *testing.T) {
	e := newEnv(t)
	l := newLocksOver(t, e, failGetStore{e.st})
	if _, held, err := l.Held(e.ctx(), KeyLock(fp1)); err == nil || held {
		t.Errorf("Held with the store down = %v, %v; want an error", held, err)
	}
	if _, err := l.All(e.ctx()); err == nil {
		t.Error("All with the store down: no error")
	}
}

// readCounter counts the store reads a caller makes.
type readCounter struct {
	kvStore
	gets, getManys int
}

func (c *readCounter) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets++
	return c.kvStore.Get(ctx, key)
}

func (c *readCounter) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	c.getManys++
	return c.kvStore.GetMany(ctx, keys...)
}

// TestLocksHeldOneRead: the SSH door asks about the person, the key and the
// target at every login; that is one store read (one round trip to Redis), and
// the answer is the first locked one in the order asked.
func TestLocksHeldOneRead(t *testing.T) {
	e := newEnv(t)
	rc := &readCounter{kvStore: e.st}
	l := newLocksOver(t, e, rc)
	ctx := e.ctx()
	for _, r := range []LockRef{KeyLock(fp1), TargetLock("prod-db")} {
		if err := l.Place(ctx, r, "sec@example.com", "test"); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		refs []LockRef
		want LockRef
		held bool
	}{
		{[]LockRef{PersonLock("ann@example.com"), KeyLock(fp1), TargetLock("prod-db")}, KeyLock(fp1), true},
		{[]LockRef{TargetLock("prod-db"), KeyLock(fp1)}, TargetLock("prod-db"), true},
		{[]LockRef{PersonLock("ann@example.com"), KeyLock(fp2), TargetLock("other")}, LockRef{}, false},
		{[]LockRef{PersonLock(""), KeyLock(""), TargetLock("prod-db")}, TargetLock("prod-db"), true},
	}
	for _, c := range cases {
		rc.gets, rc.getManys = 0, 0
		r, held, err := l.Held(ctx, c.refs...)
		if err != nil || held != c.held || r != c.want {
			t.Errorf("Held(%v) = %v, %v, %v; want %v, %v", c.refs, r, held, err, c.want, c.held)
		}
		if rc.gets != 0 || rc.getManys != 1 {
			t.Errorf("Held(%v): %d Get and %d GetMany calls, want one GetMany", c.refs, rc.gets, rc.getManys)
		}
	}
	rc.gets, rc.getManys = 0, 0
	if _, held, err := l.Held(ctx, PersonLock(""), KeyLock("")); held || err != nil || rc.gets+rc.getManys != 0 {
		t.Errorf("Held of nothing = %v, %v after %d reads; want false, nil, none", held, err, rc.gets+rc.getManys)
	}
	if _, err := l.All(ctx); err != nil { // the first folds in locks older than the index
		t.Fatal(err)
	}
	rc.gets, rc.getManys = 0, 0
	set, err := l.All(ctx)
	if err != nil || set.Len() != 2 {
		t.Fatalf("All = %d locks, %v; want 2", set.Len(), err)
	}
	if rc.gets != 1 || rc.getManys != 1 {
		t.Errorf("All: %d Get and %d GetMany calls, want the index and one GetMany", rc.gets, rc.getManys)
	}
}

// shortStore answers GetMany with no values and no error.
type shortStore struct{ *store.Bolt }

func (shortStore) GetMany(context.Context, ...string) ([][]byte, error) { return nil, nil }

// TestLocksFailOnAShortAnswer: a store (or a wrapper) that answers GetMany
// with fewer values than keys fails the check: it never reads as unlocked.
func TestLocksFailOnAShortAnswer(t *testing.T) {
	e := newEnv(t)
	l := newLocksOver(t, e, e.st)
	if err := l.Place(e.ctx(), KeyLock(fp1), "sec@example.com", "test"); err != nil {
		t.Fatal(err)
	}
	l = newLocksOver(t, e, shortStore{e.st})
	if _, held, err := l.Held(e.ctx(), KeyLock(fp1)); err == nil || held {
		t.Errorf("Held over a short answer = %v, %v; want an error", held, err)
	}
	if _, err := l.All(e.ctx()); err == nil {
		t.Error("All over a short answer: no error")
	}
}
