package sshgw

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// fwdRec is the recording of a connection's local forwards (direct-tcpip):
// one recording of kind forward per connection, started by its first
// forward and sealed when the connection and all its forwards have ended.
// One per connection rather than one per forward, because a browser behind
// `ssh -L` opens a forward per TCP connection; and not inside a session's
// recording, because a connection may forward without any session
// (`ssh -N -L`) or hold several sessions. The forwarded bytes are not
// recorded, only each forward's destination and byte counts.
type fwdRec struct {
	mu    sync.Mutex
	w     SessionRecording // nil until the first forward
	open  int              // forwards in progress
	ended bool             // the connection ended
}

// errForwardNotRecorded refuses a forward that cannot be recorded.
var errForwardNotRecorded = errors.New("forward cannot be recorded")

// forwardOpened records a forward to dest and returns the function that
// records its end with the bytes it carried each way. An error means the
// target requires recording and the forward cannot be recorded: refuse it.
func (c *conn) forwardOpened(a *authResult, dest string) (func(toDest, fromDest int64), error) {
	if a.target.cfg.Record == config.RecordOff {
		return func(int64, int64) {}, nil
	}
	f := &c.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return nil, errForwardNotRecorded
	}
	if f.w == nil {
		if err := c.startForwardRecording(a); err != nil {
			c.forwardRecordingFailed(a, err)
			return nil, errForwardNotRecorded
		}
	}
	err := f.w.Event(recording.Event{Time: c.s.now(), Type: recording.EventForwardOpen,
		Fields: map[string]string{"destination": dest}})
	if err == nil {
		err = f.w.Err()
	}
	if err != nil {
		c.forwardRecordingFailed(a, err)
		return nil, errForwardNotRecorded
	}
	f.open++
	var once sync.Once
	return func(toDest, fromDest int64) {
		once.Do(func() { c.forwardClosed(a, dest, toDest, fromDest) })
	}, nil
}

// startForwardRecording starts the connection's forward recording; f.mu
// is held.
func (c *conn) startForwardRecording(a *authResult) error {
	if c.s.recorder == nil {
		return errors.New("no recorder configured")
	}
	m := recording.Meta{User: a.who.Email, Target: a.target.cfg.Name, Login: a.login, SessionID: c.id,
		Source: c.remote.String(), Kind: recording.KindForward, Start: c.s.now()}
	w, err := c.s.recorder.Start(c.ctx, m)
	if err != nil {
		return err
	}
	c.fwd.w = w
	return w.Event(approvalEvent(a, c.s.now()))
}

// forwardClosed records the end of one forward; the last one after the
// connection ended seals the recording.
func (c *conn) forwardClosed(a *authResult, dest string, toDest, fromDest int64) {
	f := &c.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open--
	if err := f.w.Event(recording.Event{Time: c.s.now(), Type: recording.EventForwardClose, Fields: map[string]string{
		"destination": dest,
		"bytes_out":   strconv.FormatInt(toDest, 10), // client to destination
		"bytes_in":    strconv.FormatInt(fromDest, 10),
	}}); err != nil {
		c.log.ErrorContext(c.ctx, "Cannot record the end of a forward.", "error", err)
	}
	if f.ended && f.open == 0 {
		c.sealForwards()
	}
}

// endForwards notes that the connection ended: the forward recording is
// sealed now, or when its last forward ends.
func (c *conn) endForwards() {
	f := &c.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return
	}
	f.ended = true
	if f.open == 0 && f.w != nil {
		c.sealForwards()
	}
}

// sealForwards writes the end event and seals the forward recording; f.mu
// is held.
func (c *conn) sealForwards() {
	reason, by := c.endReason()
	fields := map[string]string{"reason": reason}
	if by != "" {
		fields["by"] = by
	}
	w := c.fwd.w
	_ = w.Event(recording.Event{Time: c.s.now(), Type: recording.EventEnd, Fields: fields})
	if err := w.Close(reason); err != nil {
		c.log.ErrorContext(c.ctx, "Cannot seal a forward recording.", "recording", w.ID(), "error", err)
	}
}

// forwardRecordingFailed audits a forward refused because it could not be
// recorded.
func (c *conn) forwardRecordingFailed(a *authResult, err error) {
	c.log.ErrorContext(c.ctx, "Cannot record a forward; refusing it.", "error", err)
	c.s.logAudit(context.WithoutCancel(c.ctx), audit.Event{Type: "ssh.recording", Actor: a.who.Email,
		Resource: "target:" + a.target.cfg.Name, Action: "forward", Decision: audit.Deny,
		Reason: "recording failed: " + err.Error(), Source: c.remote.String(), Session: c.id})
}
