package harness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

func TestCAIssue(t *testing.T) {
	ca := NewCA(t)
	certFile, keyFile := ca.Issue(t, "gate.test", "app.test", "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	if got := len(pair.Certificate); got != 2 {
		t.Fatalf("chain length = %d, want 2 (leaf + CA)", got)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gate.test", "app.test", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("Verify(%q) = %v, want nil", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "evil.test", Roots: ca.Pool()}); err == nil {
		t.Errorf("Verify(evil.test) = nil, want a name mismatch")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "gate.test", Roots: NewCA(t).Pool()}); err == nil {
		t.Errorf("Verify with another CA's pool = nil, want unknown authority")
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	// An in-memory certificate serves a Go TLS server that a client
	// trusting only the CA accepts.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCertificate(t, "127.0.0.1")}}
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with CA pool: %v", err)
	}
	resp.Body.Close()
}

func TestRedis(t *testing.T) {
	tests := []struct {
		name string
		opts RedisOptions
	}{
		{"no password", RedisOptions{}},
		{"password", RedisOptions{RequirePassword: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := StartRedisWith(t, tt.opts)
			if err := redisPing(r.Addr, r.Password); err != nil {
				t.Fatalf("PING: %v", err)
			}
			if tt.opts.RequirePassword {
				if err := redisPing(r.Addr, ""); err == nil {
					t.Errorf("PING without AUTH succeeded on a server with requirepass")
				}
				if data, err := os.ReadFile(r.PasswordFile); err != nil || strings.TrimSpace(string(data)) != r.Password {
					t.Errorf("PasswordFile = %q, %v; want the password", data, err)
				}
			}
			r.Stop()
			if err := redisPing(r.Addr, r.Password); err == nil {
				t.Errorf("PING after Stop succeeded")
			}
		})
	}
}

// TestSSHD checks that sshd accepts a certificate from the trusted user CA
// and a key from AuthorizedKeys, and refuses a plain unknown key and a
// certificate from another CA.
func TestSSHD(t *testing.T) {
	userCA := newSigner(t)
	otherCA := newSigner(t)
	direct := newSigner(t)
	s := StartSSHD(t, SSHDOptions{
		TrustedUserCAKeys: string(ssh.MarshalAuthorizedKey(userCA.PublicKey())),
		AuthorizedKeys:    string(ssh.MarshalAuthorizedKey(direct.PublicKey())),
	})
	if !strings.HasPrefix(s.HostKeyLine, "ssh-ed25519 AAAA") {
		t.Errorf("HostKeyLine = %q, want ssh-ed25519 AAAA...", s.HostKeyLine)
	}
	tests := []struct {
		name   string
		signer ssh.Signer
		wantOK bool
	}{
		{"trusted CA certificate", certSigner(t, userCA, s.User), true},
		{"authorized key", direct, true},
		{"unknown key", newSigner(t), false},
		{"certificate from another CA", certSigner(t, otherCA, s.User), false},
		{"certificate for another principal", certSigner(t, userCA, "someone-else"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := sshRun(s, tt.signer, "id -un")
			if !tt.wantOK {
				if err == nil {
					t.Fatalf("login succeeded, want refusal (output %q)", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if diff := cmp.Diff(s.User+"\n", out); diff != "" {
				t.Errorf("id -un output (-want +got):\n%s", diff)
			}
		})
	}
	// A CA trusted later (SetTrustedUserCAKeys) works without a restart,
	// and the old one stops working.
	laterCA := newSigner(t)
	s.SetTrustedUserCAKeys(t, string(ssh.MarshalAuthorizedKey(laterCA.PublicKey())))
	if out, err := sshRun(s, certSigner(t, laterCA, s.User), "id -un"); err != nil || out != s.User+"\n" {
		t.Errorf("login with the CA trusted later = %q, %v; want %s", out, err, s.User)
	}
	if _, err := sshRun(s, certSigner(t, userCA, s.User), "id -un"); err == nil {
		t.Errorf("login with the replaced CA succeeded")
	}
	if logs := s.Logs(); !strings.Contains(logs, `Accepted certificate ID "harness-test"`) {
		t.Errorf("sshd log lacks the accepted certificate ID:\n%s", logs)
	}
	// The known_hosts file names the host key for the real ssh client.
	kh, err := os.ReadFile(s.KnownHostsFile)
	if err != nil || !strings.Contains(string(kh), s.HostKeyLine) {
		t.Errorf("KnownHostsFile = %q, %v; want the host key", kh, err)
	}
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// certSigner returns a new key with a 5-minute user certificate for
// principal signed by ca.
func certSigner(t *testing.T, ca ssh.Signer, principal string) ssh.Signer {
	t.Helper()
	key := newSigner(t)
	cert := &ssh.Certificate{
		Key:             key.PublicKey(),
		CertType:        ssh.UserCert,
		KeyId:           "harness-test",
		ValidPrincipals: []string{principal},
		ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()),
		ValidBefore:     uint64(time.Now().Add(5 * time.Minute).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// sshRun logs in to s with signer, checking the pinned host key, and runs
// cmd.
func sshRun(s *SSHD, signer ssh.Signer, cmd string) (string, error) {
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	return string(out), err
}

func TestParseSSHApproval(t *testing.T) {
	full := "To log in as ubuntu on web, approve this connection in your browser:\n\n    https://gate.test:8443/approve/Zx9_aB\n\nVerification code: 4821-7730\n(expires in 5 minutes; waiting...)\n"
	tests := []struct {
		name   string
		output string
		want   SSHApproval
		wantOK bool
	}{
		{"full prompt", full, SSHApproval{URL: "https://gate.test:8443/approve/Zx9_aB", Code: "4821-7730"}, true},
		{"code line not finished", full[:strings.Index(full, "7730")+2], SSHApproval{URL: "https://gate.test:8443/approve/Zx9_aB"}, false},
		{"no prompt", "Permission denied (publickey).\n", SSHApproval{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseSSHApproval(tt.output)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("ParseSSHApproval = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
