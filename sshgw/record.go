package sshgw

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// SessionRecording is one recording being written: what *recording.Writer
// does. Output must copy p (the relay reuses its buffers) and be safe for
// concurrent use.
type SessionRecording interface {
	ID() string
	Output(p []byte) error
	Resize(cols, rows int) error
	Event(e recording.Event) error
	Close(reason string) error
	Err() error
}

// Recorder starts recordings. Wire *recording.Recorder with
// Recording(rec.Start).
type Recorder interface {
	Start(ctx context.Context, m recording.Meta) (SessionRecording, error)
}

// RecorderFunc is a Recorder made of a function.
type RecorderFunc func(ctx context.Context, m recording.Meta) (SessionRecording, error)

// Start calls f.
func (f RecorderFunc) Start(ctx context.Context, m recording.Meta) (SessionRecording, error) {
	return f(ctx, m)
}

// Recording adapts a Start method that returns a concrete writer type, such
// as (*recording.Recorder).Start, to a Recorder. A failed start yields a
// nil SessionRecording, never an interface holding a nil pointer.
func Recording[W SessionRecording](start func(context.Context, recording.Meta) (W, error)) Recorder {
	return RecorderFunc(func(ctx context.Context, m recording.Meta) (SessionRecording, error) {
		w, err := start(ctx, m)
		if err != nil {
			return nil, err
		}
		return w, nil
	})
}

// Limits on what one recording event keeps.
const (
	// maxRecordCommand bounds an exec command kept in a recording (the
	// audit log keeps maxAuditCommand).
	maxRecordCommand = 16 << 10
)

// msgRecordingFailed is what the client sees when its session ends because
// it can no longer be recorded.
const msgRecordingFailed = "gatehouse: recording failed; session ended"

// errNotRecording stops a relay that would otherwise pass bytes that are
// not recorded.
var errNotRecording = errors.New("sshgw: session not recorded")

// chanRec is the recording of one session channel. Only what the target
// sends (stdout and stderr) is recorded as terminal output. What the client
// sends (its keystrokes) is never recorded: the gateway cannot see whether
// the target's terminal echoes, so it cannot tell a password typed at a
// prompt with echo off from any other input, and not recording input is
// the only way never to store one. Input is only parsed, never kept, for
// the SFTP and scp file events.
type chanRec struct {
	c        *conn
	a        *authResult
	off      bool          // the target has record: off
	down     gossh.Channel // the client's side, to say why the session ends
	kill     func()        // closes the channel on both sides
	st       atomic.Pointer[recState]
	failOnce sync.Once
	failed   atomic.Bool
	ended    atomic.Bool // end began: the relay is winding down

	mu            sync.Mutex // guards the pty size before the recording starts
	width, height int
	began         bool // a shell, exec or subsystem request was handled
}

// recState is set once, when the channel's program starts.
type recState struct {
	w        SessionRecording
	noOutput bool       // sftp: stdout carries files, recorded as events only
	sftp     *sftpLog   // nil unless the sftp subsystem
	scp      *scpStream // nil unless a legacy scp exec
	scpIn    bool       // the scp source is the client (scp -t)
	// crlf: no pty was asked for, so the target's output ends lines with a
	// bare "\n" that the person's own terminal turns into "\r\n" (onlcr).
	// The recording stores what that terminal showed, or players draw a
	// staircase.
	crlf *crlfState
}

func (c *conn) newChanRec(a *authResult, down gossh.Channel, kill func()) *chanRec {
	return &chanRec{c: c, a: a, off: a.target.cfg.Record == config.RecordOff, down: down, kill: kill}
}

// refuseStart ends a session whose program cannot be recorded: the client's
// request succeeds, as if the program ran, so that every client shows the
// message, and the session exits with status 1 (the target never sees the
// request).
func (r *chanRec) refuseStart(err error, req *gossh.Request) {
	r.failWith(err, func() {
		if req.WantReply {
			_ = req.Reply(true, nil)
		}
	}, true)
}

// pty notes the terminal size of a pty-req, for the recording's header.
func (r *chanRec) pty(payload []byte) {
	var p struct {
		Term                 string
		Cols, Rows, Wpx, Hpx uint32
		Modes                string
	}
	if err := gossh.Unmarshal(payload, &p); err != nil {
		return
	}
	r.mu.Lock()
	r.width, r.height = clampSize(p.Cols), clampSize(p.Rows)
	r.mu.Unlock()
}

// resize records a window-change.
func (r *chanRec) resize(payload []byte) {
	var p struct{ Cols, Rows, Wpx, Hpx uint32 }
	if err := gossh.Unmarshal(payload, &p); err != nil {
		return
	}
	if st := r.st.Load(); st != nil {
		r.check(st.w.Resize(clampSize(p.Cols), clampSize(p.Rows)))
		return
	}
	r.mu.Lock()
	r.width, r.height = clampSize(p.Cols), clampSize(p.Rows)
	r.mu.Unlock()
}

// clampSize keeps a terminal dimension in a sane range.
func clampSize(n uint32) int { return int(min(n, 10000)) }

// errSecondProgram refuses a second shell, exec or subsystem request on a
// session channel.
var errSecondProgram = errors.New("the session already runs a program")

// start starts the recording for the channel's program (kind shell, exec
// or sftp). An error means the program must not run: the channel already
// has one (errSecondProgram), or it cannot be recorded.
func (r *chanRec) start(kind, command string) error {
	r.mu.Lock()
	if r.began {
		r.mu.Unlock()
		return errSecondProgram
	}
	r.began = true
	w, h := r.width, r.height
	r.mu.Unlock()
	if r.off {
		return nil
	}
	c, a := r.c, r.a
	rec := c.s.recorder
	if rec == nil {
		return errors.New("no recorder configured")
	}
	if len(command) > maxRecordCommand {
		command = command[:maxRecordCommand] + "..."
	}
	m := recording.Meta{User: a.who.Email, Target: a.target.cfg.Name, Login: a.login, SessionID: c.id,
		Source: c.remote.String(), Kind: kind, Command: command, Width: w, Height: h, Start: c.s.now()}
	if kind == recording.KindShell && m.Width == 0 {
		m.Width, m.Height = 80, 24 // asciicast needs a size; no pty-req came
	}
	rw, err := rec.Start(c.ctx, m)
	if err != nil {
		return err
	}
	st := &recState{w: rw}
	switch {
	case kind == recording.KindSFTP:
		st.noOutput = true
		st.sftp = newSFTPLog(r.event, c.s.now)
	case kind == recording.KindExec:
		if sc, upload := newSCPStream(command, r.event); sc != nil {
			st.scp, st.scpIn = sc, upload
		}
		if w == 0 {
			st.crlf = &crlfState{}
		}
	}
	r.st.Store(st)
	r.event(approvalEvent(a, c.s.now()))
	if kind == recording.KindExec {
		r.event(recording.Event{Type: recording.EventExec, Fields: map[string]string{"command": command}})
	}
	return nil
}

// approvalEvent says how the connection was let in.
func approvalEvent(a *authResult, now time.Time) recording.Event {
	f := map[string]string{"method": a.method, "key": a.fp, "mfa_at": a.who.MFAAt.UTC().Format(time.RFC3339)}
	switch a.method {
	case "publickey":
		f["how"] = "key bound to the person by an earlier browser approval"
	case "keyboard-interactive":
		f["how"] = "browser approval (SSO and security key) for this connection"
		if a.approval != "" {
			f["approval"] = a.approval
		}
	}
	return recording.Event{Time: now, Type: recording.EventApproval, Fields: f}
}

// event writes e to the recording (a no-op when not recording).
func (r *chanRec) event(e recording.Event) {
	st := r.st.Load()
	if st == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = r.c.s.now()
	}
	r.check(st.w.Event(e))
}

// exit records an exit-status or exit-signal from the target.
func (r *chanRec) exit(typ string, payload []byte) {
	f := map[string]string{}
	switch typ {
	case "exit-status":
		var p struct{ Status uint32 }
		if gossh.Unmarshal(payload, &p) != nil {
			return
		}
		f["status"] = strconv.FormatUint(uint64(p.Status), 10)
	case "exit-signal":
		var p struct {
			Signal    string
			Core      bool
			Msg, Lang string
		}
		if gossh.Unmarshal(payload, &p) != nil {
			return
		}
		f["signal"] = sanitize(p.Signal)
		if p.Core {
			f["core"] = "true"
		}
	default:
		return
	}
	r.event(recording.Event{Type: recording.EventExit, Fields: f})
}

// output records what the target sent before it is passed on. An error
// stops the relay: nothing reaches the client unrecorded.
func (r *chanRec) output(p []byte, stderr bool) error {
	if r.off {
		return nil
	}
	st := r.st.Load()
	if st == nil || r.failed.Load() || r.ended.Load() {
		return errNotRecording
	}
	switch {
	case stderr || !st.noOutput:
		if err := st.crlf.output(st.w, p); err != nil {
			r.fail(err)
			return err
		}
	default:
		st.sftp.response(p)
	}
	if st.scp != nil && !st.scpIn && !stderr {
		st.scp.feed(p)
	}
	return r.check(st.w.Err())
}

// input sees what the client sends, before it is passed on, only to parse
// SFTP requests and scp uploads; the bytes are never recorded.
func (r *chanRec) input(p []byte) error {
	if r.off {
		return nil
	}
	st := r.st.Load()
	if st == nil || r.failed.Load() || r.ended.Load() {
		return errNotRecording
	}
	if st.sftp != nil {
		st.sftp.request(p)
	}
	if st.scp != nil && st.scpIn {
		st.scp.feed(p)
	}
	return r.check(st.w.Err())
}

// check ends the session if err says the recording cannot be written.
func (r *chanRec) check(err error) error {
	if err != nil && !r.ended.Load() {
		r.fail(err)
	}
	return err
}

// fail ends the session because it cannot be recorded: the client is told,
// the audit log says why, and the channel is closed. The error's text is
// for the audit log only.
func (r *chanRec) fail(err error) { r.failWith(err, nil, true) }

// failWith is fail, running before (if set) after the audit and before
// the message, and sending exit status 1 after the message if exit.
func (r *chanRec) failWith(err error, before func(), exit bool) {
	if r.off {
		return
	}
	r.failOnce.Do(func() {
		r.failed.Store(true)
		c := r.c
		c.log.ErrorContext(c.ctx, "Session recording failed; ending the session.", "error", err)
		ev := audit.Event{Type: "ssh.recording", Actor: r.a.who.Email, Resource: "target:" + r.a.target.cfg.Name,
			Action: "login " + r.a.login, Decision: audit.Deny, Reason: "recording failed: " + err.Error(),
			Source: c.remote.String(), Session: c.id}
		c.s.logAudit(context.WithoutCancel(c.ctx), ev)
		if before != nil {
			before()
		}
		sayAll([]io.Writer{r.down.Stderr()}, []byte("\r\n"+msgRecordingFailed+"\r\n"))
		if exit {
			_, _ = r.down.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{1}))
		}
		r.kill()
	})
}

// end records why the channel ended and seals the recording.
func (r *chanRec) end() {
	r.ended.Store(true)
	st := r.st.Load()
	if st == nil {
		return
	}
	if st.sftp != nil {
		st.sftp.finish()
	}
	if st.scp != nil {
		st.scp.finish()
	}
	reason, by := r.c.endReason()
	if r.failed.Load() {
		reason, by = "recording failed", ""
	}
	f := map[string]string{"reason": reason}
	if by != "" {
		f["by"] = by
	}
	_ = st.w.Event(recording.Event{Time: r.c.s.now(), Type: recording.EventEnd, Fields: f})
	if err := st.w.Close(reason); err != nil {
		r.c.log.ErrorContext(r.c.ctx, "Cannot seal a session recording.", "recording", st.w.ID(), "error", err)
	}
}

// recWriter passes the target's output to w after recording it.
type recWriter struct {
	w      io.Writer
	r      *chanRec
	stderr bool
}

func (t recWriter) Write(p []byte) (int, error) {
	if err := t.r.output(p, t.stderr); err != nil {
		return 0, err
	}
	return t.w.Write(p)
}

// inWriter passes the client's input to w after the file-transfer parsers
// saw it.
type inWriter struct {
	w io.Writer
	r *chanRec
}

func (t inWriter) Write(p []byte) (int, error) {
	if err := t.r.input(p); err != nil {
		return 0, err
	}
	return t.w.Write(p)
}

// requiredRecorderCheck refuses a policy with a target that requires
// recording when the gateway has no recorder.
func (p *policy) requiredRecorderCheck(rec Recorder) error {
	if rec != nil {
		return nil
	}
	for i, t := range p.order {
		if t.cfg.Record != config.RecordOff {
			return errors.New("sshgw: targets[" + strconv.Itoa(i) + "] (" + t.cfg.Name + ") requires recording, but the gateway has no recorder")
		}
	}
	return nil
}
