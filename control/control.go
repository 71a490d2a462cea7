// Package control carries admin commands (lock, unlock, enroll-link, ...)
// from the gatehouse command line to a running server over a Unix socket in
// the data directory. The embedded store allows one process at a time, so
// while `serve` runs the CLI cannot open it; it asks the server to run the
// command instead. When no server is running the CLI runs the very same Op
// against the store itself, so every command has one implementation.
//
// The socket is the security boundary: it is created mode 0600 inside the
// 0700 data directory, and the server also checks the peer's uid with
// SO_PEERCRED, accepting only its own uid and root.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// SocketName is the socket's file name inside the data directory.
const SocketName = "control.sock"

// Op runs one admin command and returns what to print.
type Op func(ctx context.Context, args []string) (string, error)

// ErrNoServer means no server is listening on the socket: the caller may
// open the store itself.
var ErrNoServer = errors.New("control: no running server")

// maxRequest bounds a request body; admin arguments are short.
const maxRequest = 64 << 10

type request struct {
	Op   string   `json:"op"`
	Args []string `json:"args"`
}

type response struct {
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Server answers admin requests on a Unix socket.
type Server struct {
	// Ops maps a command name to its implementation. Unknown names are
	// refused.
	Ops map[string]Op
	// Logger receives one line per command (name and outcome, never
	// arguments' secrets: commands take emails and IDs only). If nil,
	// nothing is logged.
	Logger *slog.Logger

	once sync.Once
	srv  *http.Server // built once, so Shutdown before Serve still stops it
}

func (s *Server) server() *http.Server {
	s.once.Do(func() {
		s.srv = &http.Server{
			Handler:           http.HandlerFunc(s.handle),
			ReadHeaderTimeout: 5 * time.Second,
			ConnContext:       withPeer,
		}
	})
	return s.srv
}

// Listen creates the socket at path with mode 0600, replacing a stale
// socket left by a crashed server but refusing to steal one that answers.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another gatehouse is serving this data directory", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.server().Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server, letting running commands finish until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.server().Shutdown(ctx)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if err := peerAllowed(r.Context()); err != nil {
		s.reply(w, http.StatusForbidden, response{Error: err.Error()})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/run" {
		s.reply(w, http.StatusNotFound, response{Error: "not found"})
		return
	}
	var req request
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&req); err != nil {
		s.reply(w, http.StatusBadRequest, response{Error: "malformed request"})
		return
	}
	op, ok := s.Ops[req.Op]
	if !ok {
		s.reply(w, http.StatusNotFound, response{Error: fmt.Sprintf("unknown command %q", req.Op)})
		return
	}
	p, _ := r.Context().Value(peerKey{}).(peer)
	out, err := op(WithCaller(r.Context(), CallerForUID(p.uid)), req.Args)
	if s.Logger != nil {
		s.Logger.InfoContext(r.Context(), "Admin command.", "op", req.Op, "ok", err == nil)
	}
	if err != nil {
		s.reply(w, http.StatusOK, response{Output: out, Error: err.Error()})
		return
	}
	s.reply(w, http.StatusOK, response{Output: out})
}

func (s *Server) reply(w http.ResponseWriter, code int, resp response) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(resp)
}

// Call asks the server listening at path to run op. It returns ErrNoServer
// when nothing listens there, and the command's own error otherwise.
func Call(ctx context.Context, path, op string, args []string) (string, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	body, err := json.Marshal(request{Op: op, Args: args})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://gatehouse/v1/run", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return "", ErrNoServer
		}
		return "", fmt.Errorf("control socket: %w", err)
	}
	defer resp.Body.Close()
	var out response
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("control socket: malformed reply: %w", err)
	}
	if out.Error != "" {
		return out.Output, errors.New(out.Error)
	}
	return out.Output, nil
}
