package sshgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// TerminateChannel is the store channel on which Terminate asks every
// replica to end a session, as a lock travels on identity.LockChannel.
const TerminateChannel = "sshgw.terminate"

// terminateMsg is what travels on TerminateChannel.
type terminateMsg struct {
	Session string `json:"session"`
	By      string `json:"by"`
}

// Terminate ends the live SSH connection whose session ID (the target
// certificate's KeyId, recording.Meta.SessionID) is sessionID, on behalf
// of by (a reviewer's email). The client is told "terminated by <by>", and
// the audit log and the connection's recordings keep that reason.
//
// It reports whether the connection was live on this replica. If it was
// not, the request is published on TerminateChannel and the replica that
// holds the connection ends it; false with a nil error means it was sent.
func (s *Server) Terminate(ctx context.Context, sessionID, by string) (bool, error) {
	by = sanitize(by)
	if sessionID == "" || by == "" {
		return false, errors.New("sshgw: terminate needs a session ID and who terminates it")
	}
	if s.terminateLocal(sessionID, by) {
		return true, nil
	}
	msg, err := json.Marshal(terminateMsg{Session: sessionID, By: by})
	if err != nil {
		return false, fmt.Errorf("sshgw: terminate: %w", err)
	}
	if err := s.store.Publish(ctx, TerminateChannel, msg); err != nil {
		return false, fmt.Errorf("sshgw: terminate: publish: %w", err)
	}
	return false, nil
}

// terminateLocal ends the connection with session ID id on this replica,
// if there is one.
func (s *Server) terminateLocal(id, by string) bool {
	n := s.closeAllBy(func(c *conn) bool { return c.id == id }, "terminated by "+by, by)
	if n > 0 {
		s.log.InfoContext(s.ctx, "Terminated an SSH session.", "session", id, "by", by)
	}
	return n > 0
}

// onTerminate handles a termination published by any replica (this one's
// own finds nothing left to end).
func (s *Server) onTerminate(m []byte) {
	var t terminateMsg
	if err := json.Unmarshal(m, &t); err != nil || t.Session == "" || t.By == "" {
		s.log.WarnContext(s.ctx, "Ignoring a malformed terminate message.")
		return
	}
	s.terminateLocal(t.Session, sanitize(t.By))
}
