// Package recording records SSH sessions for security review: terminal
// output as asciicast v2, structured events (exec, SFTP, scp, forwards,
// approvals, the end reason) beside it, written while the session runs,
// encrypted at rest with age, and sealed with a hash chain and an Ed25519
// signature so that a reviewer can prove nothing was cut or changed. It
// also keeps the index that the reviewer console and `gatehouse recordings`
// list, filter and search, and applies retention and purges.
//
// This file is the package's contract with its callers (sshgw writes,
// portal's reviewer console and cmd/gatehouse read). The implementation
// lives in the other files of the package.
package recording

import (
	"errors"
	"time"
)

// Status of a recording.
const (
	StatusLive       = "live"       // being written now
	StatusComplete   = "complete"   // sealed
	StatusIncomplete = "incomplete" // writer stopped without sealing (crash); readable up to the last flush
)

// Kinds of session.
const (
	KindShell   = "shell"   // interactive, with a terminal
	KindExec    = "exec"    // a command (also scp)
	KindSFTP    = "sftp"    // the sftp subsystem
	KindForward = "forward" // direct-tcpip only (ssh -W, -L, -N)
)

// Meta describes one recording; it is what the index keeps (in the store,
// never the session's content) and what `recordings list --json` prints.
type Meta struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`   // the person's email
	Target    string    `json:"target"` // target name from the config
	Login     string    `json:"login"`
	SessionID string    `json:"session"` // the SSH connection's session ID (certificate KeyId)
	Source    string    `json:"source"`  // client address
	Kind      string    `json:"kind"`
	Command   string    `json:"command,omitempty"` // exec command line
	Width     int       `json:"width,omitempty"`
	Height    int       `json:"height,omitempty"`
	Term      string    `json:"term,omitempty"` // the client's TERM, for the asciicast header's env
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"` // zero while live
	Status    string    `json:"status"`
	EndReason string    `json:"end_reason,omitempty"` // normal, idle timeout, terminated by X, account locked, policy changed by reload, ...
	Replica   string    `json:"replica,omitempty"`
	Bytes     int64     `json:"bytes"`          // output bytes recorded
	Seal      string    `json:"seal,omitempty"` // hex SHA-256 of the seal, also in the audit log
}

// Event is a structured event recorded beside the terminal output. Type is
// one of the Event* constants; Fields carry the details (path, bytes,
// sha256, exit status, destination, ...). Never a secret, never input typed
// with echo off.
type Event struct {
	Time   time.Time         `json:"time"`
	Type   string            `json:"type"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Event types.
const (
	EventExec         = "exec"          // command
	EventExit         = "exit"          // status, signal
	EventSFTP         = "sftp"          // op (open, read, write, rename, remove, mkdir, rmdir, setstat, ...), path, to, bytes, sha256
	EventSCP          = "scp"           // direction, path, bytes, sha256
	EventForwardOpen  = "forward.open"  // destination
	EventForwardClose = "forward.close" // destination, bytes_in, bytes_out
	EventApproval     = "approval"      // how the connection was approved
	EventEnd          = "end"           // reason, by
)

// Filter selects recordings. Zero fields match everything.
type Filter struct {
	User, Target, Login, Status string
	Since, Until                time.Time     // Start within [Since, Until)
	MinDuration, MaxDuration    time.Duration // End-Start (live: now-Start)
	// Query is full-text: every word must occur in the session's commands
	// or terminal output (case-insensitive), looked up in the index built
	// while recording, never by scanning files.
	Query string
	Limit int // 0: no limit; newest first
}

// Report is what Verify found.
type Report struct {
	ID       string
	OK       bool     // every check passed
	Complete bool     // sealed (false: incomplete, or live)
	Chunks   int      // chunks read and chained
	Problems []string // each check that failed, in words ("chunk 7: hash chain broken", "seal: signature invalid", "truncated after chunk 12", "file belongs to recording X")
}

// Errors.
var (
	ErrNotFound = errors.New("recording: not found")
	ErrTampered = errors.New("recording: verification failed")
	ErrHold     = errors.New("recording: under legal hold")
)
