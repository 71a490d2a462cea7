package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func startServer(t *testing.T, ops map[string]Op) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), SocketName)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Ops: ops}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func TestCall(t *testing.T) {
	path := startServer(t, map[string]Op{
		"echo": func(_ context.Context, args []string) (string, error) { return strings.Join(args, " "), nil },
		"fail": func(context.Context, []string) (string, error) { return "partial", errors.New("no such user") },
	})
	ctx := context.Background()
	tests := []struct {
		op, wantOut, wantErr string
		args                 []string
	}{
		{op: "echo", args: []string{"a@example.com", "x"}, wantOut: "a@example.com x"},
		{op: "fail", wantOut: "partial", wantErr: "no such user"},
		{op: "nope", wantErr: `unknown command "nope"`},
	}
	for _, tt := range tests {
		out, err := Call(ctx, path, tt.op, tt.args)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if out != tt.wantOut || gotErr != tt.wantErr {
			t.Errorf("Call(%q) = %q, %q; want %q, %q", tt.op, out, gotErr, tt.wantOut, tt.wantErr)
		}
	}
}

func TestSocketMode(t *testing.T) {
	path := startServer(t, nil)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("socket mode = %o, want 600", mode)
	}
}

func TestNoServer(t *testing.T) {
	dir := t.TempDir()
	if _, err := Call(context.Background(), filepath.Join(dir, SocketName), "echo", nil); !errors.Is(err, ErrNoServer) {
		t.Errorf("Call with no socket = %v, want ErrNoServer", err)
	}
	// A stale socket file (server crashed) also means no server, and a new
	// server may take it over.
	path := filepath.Join(dir, SocketName)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Call(context.Background(), path, "echo", nil); !errors.Is(err, ErrNoServer) {
		t.Errorf("Call with stale socket = %v, want ErrNoServer", err)
	}
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	ln.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := startServer(t, nil)
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another gatehouse") {
		t.Errorf("second Listen = %v, want refusal", err)
	}
}
