package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/gatehouse-dev/gatehouse/config"
)

// newLogger returns the operational logger in the format and at the level
// of l (which SIGHUP reloads may change through lv). config resolves both
// (json and info when absent) and validates them, so nothing is
// re-defaulted here. A value outside that set cannot come through
// config.Load; if one arrives anyway (a Config built in code without
// ApplyDefaults), serve still needs a logger to report anything, so this
// one logs everything as JSON and says why in its first record rather than
// hide records behind a guessed level.
func newLogger(l config.Log, w io.Writer, lv *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	text, level, err := logSettings(l)
	if err != nil {
		lv.Set(slog.LevelDebug)
		logger := slog.New(slog.NewJSONHandler(w, opts))
		logger.Error("Log settings were not resolved by config; logging everything as JSON.", "error", err)
		return logger
	}
	lv.Set(level)
	if text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// logSettings maps log.format and log.level to a handler kind and level.
// An empty or unknown value is an error, never a default.
func logSettings(l config.Log) (text bool, level slog.Level, err error) {
	switch l.Format {
	case "json":
	case "text":
		text = true
	default:
		return false, 0, fmt.Errorf("log.format %q: must be json or text", l.Format)
	}
	level, err = parseLogLevel(l.Level)
	return text, level, err
}

func parseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level %q: must be debug, info, warn or error", s)
}

// logLevel is the level a reload sets. Its value comes through
// config.Load (resolved and validated); an unknown one logs everything, as
// newLogger does, rather than hide records behind a guessed level.
func logLevel(s string) slog.Level {
	level, err := parseLogLevel(s)
	if err != nil {
		return slog.LevelDebug
	}
	return level
}
