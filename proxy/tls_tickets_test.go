package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// frozenTicketCache keeps the first session ticket it gets, so that later
// handshakes always offer that ticket even when the server sends new ones.
type frozenTicketCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *frozenTicketCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *frozenTicketCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cs == nil && cs != nil {
		c.cs = cs
	}
}

// pipeHandshake runs one TLS handshake over an in-memory pipe and reports
// whether the client resumed its session.
func pipeHandshake(t *testing.T, server, client *tls.Config) bool {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- tls.Server(sc, server).Handshake()
		sc.Close()
	}()
	c := tls.Client(cc, client)
	err := c.Handshake()
	resumed := c.ConnectionState().DidResume
	cc.Close()
	if serr := <-done; err != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", err, serr)
	}
	return resumed
}

func TestTicketRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		certPEM, keyPEM, err := makeSelfSigned([]string{"gate.test"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		server, err := newTLSPolicy(config.TLS{MinVersion: "1.2"}, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })
		if err != nil {
			t.Fatal(err)
		}
		rot := newTicketRotator(server)
		ctx, cancel := context.WithCancel(context.Background())
		go rot.run(ctx)

		roots := x509.NewCertPool()
		roots.AddCert(cert.Leaf)
		cache := &frozenTicketCache{}
		client := &tls.Config{MaxVersion: tls.VersionTLS12, ServerName: "gate.test", RootCAs: roots, ClientSessionCache: cache}

		steps := []struct {
			name        string
			wait        time.Duration
			wantResumed bool
		}{
			{"first contact", 0, false},
			{"same key", time.Minute, true},
			{"after one rotation", ticketRotateEvery, true},
			{"just before the key's lifetime ends", ticketKeyLifetime - ticketRotateEvery - time.Minute - time.Second, true},
			{"after the key's lifetime", 2 * time.Second, false},
		}
		for _, s := range steps {
			time.Sleep(s.wait)
			synctest.Wait() // let the rotation (if due) finish
			if got := pipeHandshake(t, server, client); got != s.wantResumed {
				t.Errorf("%s (t+%v): resumed = %v, want %v", s.name, time.Since(start), got, s.wantResumed)
			}
			rot.mu.Lock()
			n := len(rot.keys)
			rot.mu.Unlock()
			if n > rot.keep {
				t.Errorf("%s: %d keys held, want at most %d", s.name, n, rot.keep)
			}
		}
		cancel()
		synctest.Wait()
	})
}
