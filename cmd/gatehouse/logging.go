package main

import (
	"io"
	"log/slog"

	"github.com/gatehouse-dev/gatehouse/config"
)

// newLogger returns the operational logger: JSON by default, text for
// humans, at the level in lv (which SIGHUP reloads may change).
func newLogger(l config.Log, w io.Writer, lv *slog.LevelVar) *slog.Logger {
	lv.Set(logLevel(l.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
