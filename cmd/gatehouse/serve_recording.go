package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/store"
)

// sweepEvery is how often retention runs: recordings outlive their
// target's retention by at most this much.
const sweepEvery = time.Hour

// openRecorder builds the session recorder and marks recordings that this
// replica left live (a crash) as incomplete before any new session starts.
func (s *server) openRecorder(ctx context.Context, cfg *config.Config, st store.Store, al auditLog) (*recording.Recorder, error) {
	replica, _ := os.Hostname()
	rec, err := recording.New(recorderConfig(cfg, st, s.secrets, al, s.logger.With("component", "recording"), replica))
	if err != nil {
		return nil, err
	}
	n, err := rec.Recover(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		s.logger.WarnContext(ctx, "Recordings left live by a previous run are marked incomplete.", "count", n)
	}
	s.rec = rec
	return rec, nil
}

// terminate ends a live SSH connection for the reviewer console.
func (s *server) terminate(ctx context.Context, sessionID, by string) (bool, error) {
	if s.ssh == nil {
		return false, errors.New("the SSH bastion is off")
	}
	return s.ssh.Terminate(ctx, sessionID, by)
}

// sweepRecordings applies each target's retention now and then every
// sweepEvery, with the config in force at the time, until ctx ends.
func (s *server) sweepRecordings(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		if n, err := s.rec.Sweep(ctx, retention(s.cfg.Load())); err != nil {
			s.logger.ErrorContext(ctx, "Applying recording retention failed.", "error", err)
		} else if n > 0 {
			s.logger.InfoContext(ctx, "Recordings past their retention deleted.", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
