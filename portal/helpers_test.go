package portal

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// upBolt opens an embedded store in a temporary directory.
func upBolt(t testing.TB) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// upSigner is an assertion signer over st.
func upSigner(t testing.TB, st *store.Bolt, now func() time.Time) *assertion.Signer {
	t.Helper()
	a, err := assertion.NewSigner(context.Background(), assertion.Config{
		Store: st, Secrets: secretstest.Shared(t), Issuer: "https://gate.example.test/", Logger: testlog.New(t), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// upSeen records what the upstream received.
type upSeen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *upSeen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (s *upSeen) last(t *testing.T) *http.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("upstream received nothing")
	}
	return s.reqs[len(s.reqs)-1]
}

func (s *upSeen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}
