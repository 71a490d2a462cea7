package recording

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// maxCastLine bounds one asciicast line when replaying (the writer makes
// output events of at most maxPendingOut bytes, escaped).
const maxCastLine = 8 << 20

// ReplayOptions tune Replay.
type ReplayOptions struct {
	Speed   float64       // playback speed; 0 means 1
	NoWait  bool          // print everything at once
	MaxIdle time.Duration // longest pause between two outputs; 0 means 2s (as asciinema's idle_time_limit)
	// Sleep waits for d or until ctx ends. Nil: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// castEvent is one parsed asciicast v2 event line.
type castEvent struct {
	Time float64
	Code string
	Data string
}

// parseCastEvent parses one asciicast v2 event line, [time, code, data].
func parseCastEvent(line []byte) (castEvent, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return castEvent{}, fmt.Errorf("asciicast event: %w", err)
	}
	if len(raw) != 3 {
		return castEvent{}, errors.New("asciicast event: want [time, code, data]")
	}
	var ev castEvent
	if err := json.Unmarshal(raw[0], &ev.Time); err != nil || ev.Time < 0 || math.IsInf(ev.Time, 0) || math.IsNaN(ev.Time) {
		return castEvent{}, errors.New("asciicast event: time must be a non-negative number")
	}
	if err := json.Unmarshal(raw[1], &ev.Code); err != nil {
		return castEvent{}, errors.New("asciicast event: code must be a string")
	}
	if err := json.Unmarshal(raw[2], &ev.Data); err != nil {
		return castEvent{}, errors.New("asciicast event: data must be a string")
	}
	return ev, nil
}

// Replay reads an asciicast v2 stream (what Cast writes) and writes its
// output events to dst with their timing, for `recordings play`.
func Replay(ctx context.Context, src io.Reader, dst io.Writer, o ReplayOptions) error {
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 2 * time.Second
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 0, 64<<10), maxCastLine)
	if !sc.Scan() {
		return fmt.Errorf("asciicast: no header: %w", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
	}
	var h castHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Version != 2 {
		return errors.New("asciicast: not a version 2 header")
	}
	last := 0.0
	for sc.Scan() {
		ev, err := parseCastEvent(sc.Bytes())
		if err != nil {
			return err
		}
		if ev.Code != codeOutput {
			continue
		}
		if !o.NoWait && ev.Time > last {
			// Cap in float: a huge time would overflow a Duration.
			d := o.MaxIdle
			if secs := (ev.Time - last) / o.Speed; secs < o.MaxIdle.Seconds() {
				d = time.Duration(secs * float64(time.Second))
			}
			if err := o.Sleep(ctx, d); err != nil {
				return err
			}
		}
		last = max(last, ev.Time)
		if _, err := io.WriteString(dst, ev.Data); err != nil {
			return err
		}
	}
	return sc.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
