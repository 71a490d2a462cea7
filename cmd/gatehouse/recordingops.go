package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/control"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// recorderConfig is the one place that says where recordings and their
// keys live in data_dir; serve and the CLI both build their Recorder from
// it, so they read and write the same files with the same keys.
func recorderConfig(cfg *config.Config, st store.Store, kr *secrets.Keyring, al auditLog, logger *slog.Logger, replica string) recording.Config {
	return recording.Config{
		Dir: cfg.Recording.Dir, Keys: keyVault(cfg, st, kr, logger),
		Recipients: cfg.Recording.Recipients, Store: st, Audit: al, Logger: logger,
		Replica: replica, Hold: legalHold(cfg),
	}
}

// legalHold reports whether a person is listed in recording.legal_hold.
func legalHold(cfg *config.Config) func(user string) bool {
	return func(user string) bool {
		for _, h := range cfg.Recording.LegalHold {
			if strings.EqualFold(strings.TrimSpace(h), strings.TrimSpace(user)) {
				return true
			}
		}
		return false
	}
}

// retention returns each target's retention (0: keep; unknown target, a
// target removed from the config: keep, as deleting on a config edit would
// be a surprise).
func retention(cfg *config.Config) func(target string) time.Duration {
	return func(target string) time.Duration {
		for _, t := range cfg.Targets {
			if t.Name == target {
				return t.Retention.D()
			}
		}
		return 0
	}
}

// Control ops of the recording commands. serve offers them on the control
// socket (see recordingOps); with no server running, the CLI runs them on
// the store itself.
const (
	opRecList   = "recordings.list"   // [filter JSON] -> Meta JSON lines
	opRecVerify = "recordings.verify" // [id] -> report
	opRecExport = "recordings.export" // [id, absolute path, "play"|"export"] -> the cast written to path
	opPurge     = "purge"             // [user] -> what was removed
)

// recordingOps builds the recording commands over a recorder, the identity
// components (for purge) and the audit log.
func recordingOps(cfg *config.Config, rec *recording.Recorder, id *identityParts, al auditLog) map[string]control.Op {
	return map[string]control.Op{
		opRecList: func(ctx context.Context, args []string) (string, error) {
			var f recording.Filter
			if len(args) != 1 || json.Unmarshal([]byte(args[0]), &f) != nil {
				return "", errors.New("recordings.list takes a filter")
			}
			ms, err := rec.List(ctx, f)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			enc := json.NewEncoder(&b)
			for _, m := range ms {
				enc.Encode(m)
			}
			return b.String(), nil
		},
		opRecVerify: func(ctx context.Context, args []string) (string, error) {
			if len(args) != 1 {
				return "", errors.New("recordings.verify takes ID")
			}
			rep, err := rec.Verify(ctx, args[0])
			if err != nil {
				return "", err
			}
			if aerr := auditVerify(ctx, al, args[0], control.Caller(ctx), rep.Problems); aerr != nil {
				return "", fmt.Errorf("audit: %w", aerr)
			}
			return formatReport(rep), verifyErr(rep)
		},
		opRecExport: func(ctx context.Context, args []string) (string, error) {
			if len(args) != 3 || !filepath.IsAbs(args[1]) || (args[2] != "play" && args[2] != "export") {
				return "", errors.New("recordings.export takes ID, an absolute path and play or export")
			}
			return "", exportCast(ctx, rec, al, args[0], args[1], args[2])
		},
		opPurge: func(ctx context.Context, args []string) (string, error) {
			if len(args) != 1 {
				return "", errors.New("purge takes USER")
			}
			return purge(ctx, cfg, rec, id, al, args[0])
		},
	}
}

func formatReport(rep *recording.Report) string {
	var b strings.Builder
	switch {
	case rep.OK:
		fmt.Fprintf(&b, "%s: OK, sealed, %d chunks, hash chain and signature verified\n", rep.ID, rep.Chunks)
	case len(rep.Problems) == 0:
		fmt.Fprintf(&b, "%s: not sealed yet (live), %d chunks chained so far\n", rep.ID, rep.Chunks)
	default:
		fmt.Fprintf(&b, "%s: FAILED (%d chunks read)\n", rep.ID, rep.Chunks)
		for _, p := range rep.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}

// verifyErr is the error of a failed verification; a live recording with
// no problem so far is not a failure.
func verifyErr(rep *recording.Report) error {
	if len(rep.Problems) > 0 {
		return recording.ErrTampered
	}
	return nil
}

// exportCast writes a recording's plain asciicast to path (mode 0600) and
// audits the playback or export with the caller as the actor.
func exportCast(ctx context.Context, rec *recording.Recorder, al auditLog, id, path, purpose string) error {
	m, err := rec.Get(ctx, id)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = tamperAudited{Recorder: rec, audit: al}.Cast(ctx, id, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	decision := audit.Allow
	if err != nil {
		decision = audit.Deny
	}
	if aerr := al.Log(ctx, audit.Event{Type: "recording." + purpose, Actor: control.Caller(ctx),
		Resource: "target:" + m.Target, Session: m.SessionID, Decision: decision,
		Details: map[string]string{"recording": id}}); aerr != nil && err == nil {
		err = fmt.Errorf("audit: %w", aerr)
	}
	return err
}

// eventRecordingVerify is the audit event of a verification: Decision Deny
// when the recording's seal or hash chain fails, which the alerter's
// recording rule raises on at once (see alertOptions).
const eventRecordingVerify = "recording.verify"

// maxProblemText bounds the problems an audit event quotes.
const maxProblemText = 512

// auditVerify records that by verified recording id (or that a playback
// found it tampered), with the problems found (none: it verified).
func auditVerify(ctx context.Context, al auditLog, id, by string, problems []string) error {
	ev := audit.Event{Type: eventRecordingVerify, Actor: by, Resource: "recording:" + id, Action: "verify",
		Decision: audit.Allow, Details: map[string]string{"recording": id}}
	if len(problems) > 0 {
		ev.Decision, ev.Reason = audit.Deny, "seal or hash chain failed verification"
		p := strings.Join(problems, "; ")
		if len(p) > maxProblemText {
			p = p[:maxProblemText]
		}
		ev.Details["problems"] = p
	}
	return al.Log(context.WithoutCancel(ctx), ev)
}

// caller names who asked: the admin command's caller, or "" for a request
// that did not come through the control socket (the console's reviewer is
// in the playback event the portal records).
func caller(ctx context.Context) string {
	if c := control.Caller(ctx); c != "cli:unknown" {
		return c
	}
	return ""
}

// tamperAudited is the recorder as playback reads it (recordings play and
// export here, and the reviewer console): a cast or event list refused because the recording
// fails verification is also a recording.verify refusal in the audit log,
// so the alerter sees a tampered recording whichever door found it.
type tamperAudited struct {
	*recording.Recorder
	audit auditLog
}

// Cast is recording.Recorder.Cast, auditing a tampered recording.
func (t tamperAudited) Cast(ctx context.Context, id string, w io.Writer) error {
	err := t.Recorder.Cast(ctx, id, w)
	t.check(ctx, id, err)
	return err
}

// Events is recording.Recorder.Events, auditing a tampered recording.
func (t tamperAudited) Events(ctx context.Context, id string) ([]recording.Event, error) {
	evs, err := t.Recorder.Events(ctx, id)
	t.check(ctx, id, err)
	return evs, err
}

func (t tamperAudited) check(ctx context.Context, id string, err error) {
	if errors.Is(err, recording.ErrTampered) {
		_ = auditVerify(ctx, t.audit, id, caller(ctx), []string{err.Error()})
	}
}

// purge deletes a person's data: recordings (unless under legal hold),
// portal sessions, SSH key bindings and the user record with its security
// keys. The audit event keeps only the fact and the counts, not the person.
func purge(ctx context.Context, cfg *config.Config, rec *recording.Recorder, id *identityParts, al auditLog, user string) (string, error) {
	var b strings.Builder
	counts := map[string]string{}
	out, err := purgeSteps(ctx, &b, counts, rec, id, user)
	// Audited whether it finished or not: a purge that stopped part-way has
	// still deleted what the counts say.
	reason := "personal data deleted on request"
	if err != nil {
		reason = "personal data deletion stopped part-way: " + err.Error()
	}
	if aerr := al.Log(ctx, audit.Event{Type: "purge", Actor: control.Caller(ctx), Decision: audit.Allow,
		Reason: reason, Details: counts}); aerr != nil {
		return out, errors.Join(err, fmt.Errorf("audit: %w", aerr))
	}
	return out, err
}

// purgeSteps deletes a person's data in order, writing what it removed to
// b and counts, and stops at the first failure.
func purgeSteps(ctx context.Context, b *strings.Builder, counts map[string]string, rec *recording.Recorder, id *identityParts, user string) (string, error) {
	ids, err := rec.Purge(ctx, user)
	switch {
	case errors.Is(err, recording.ErrHold):
		fmt.Fprintf(b, "recordings: kept, %s is under legal hold (recording.legal_hold)\n", user)
	case err != nil:
		return b.String(), fmt.Errorf("recordings: %w", err)
	default:
		fmt.Fprintf(b, "recordings: %d deleted%s\n", len(ids), listIDs(ids))
		counts["recordings"] = strconv.Itoa(len(ids))
	}
	n, err := id.sessions.RevokeAll(ctx, user)
	if err != nil {
		return b.String(), fmt.Errorf("sessions: %w", err)
	}
	fmt.Fprintf(b, "portal sessions: %d revoked\n", n)
	counts["sessions"] = strconv.Itoa(n)
	if n, err = id.keys.Unbind(ctx, user); err != nil {
		return b.String(), fmt.Errorf("key bindings: %w", err)
	}
	fmt.Fprintf(b, "SSH key bindings: %d removed\n", n)
	counts["key_bindings"] = strconv.Itoa(n)
	keys := 0
	if u, err := id.users.Get(ctx, user); err == nil {
		keys = len(u.Credentials)
	}
	if err := id.users.Purge(ctx, user); err != nil {
		return b.String(), fmt.Errorf("user record: %w", err)
	}
	fmt.Fprintf(b, "user record and %d security keys (WebAuthn credentials): removed\n", keys)
	counts["security_keys"] = strconv.Itoa(keys)
	return b.String(), nil
}

func listIDs(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ": " + strings.Join(ids, " ")
}
