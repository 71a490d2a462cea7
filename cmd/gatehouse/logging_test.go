package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

// TestNewLogger: the resolved settings are applied as they are.
func TestNewLogger(t *testing.T) {
	tests := []struct {
		format, level string
		wantJSON      bool
		wantLevel     slog.Level
	}{
		{"json", "info", true, slog.LevelInfo},
		{"text", "debug", false, slog.LevelDebug},
		{"json", "warn", true, slog.LevelWarn},
		{"text", "error", false, slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			var lv slog.LevelVar
			newLogger(config.Log{Format: tt.format, Level: tt.level}, &buf, &lv).Error("hello")
			if lv.Level() != tt.wantLevel {
				t.Errorf("level = %v, want %v", lv.Level(), tt.wantLevel)
			}
			line := buf.String()
			if isJSON := json.Valid([]byte(line)); isJSON != tt.wantJSON {
				t.Errorf("JSON = %v, want %v: %q", isJSON, tt.wantJSON, line)
			}
			if !strings.Contains(line, "hello") {
				t.Errorf("record missing: %q", line)
			}
		})
	}
}

// TestNewLoggerUnresolved: settings that skipped config's defaults are not
// read as json/info; the logger says so and hides nothing.
func TestNewLoggerUnresolved(t *testing.T) {
	for _, l := range []config.Log{{}, {Format: "json"}, {Level: "info"}, {Format: "xml", Level: "info"}, {Format: "json", Level: "loud"}} {
		var buf bytes.Buffer
		var lv slog.LevelVar
		newLogger(l, &buf, &lv)
		if lv.Level() != slog.LevelDebug {
			t.Errorf("%+v: level = %v, want debug", l, lv.Level())
		}
		var rec struct{ Level, Msg, Error string }
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("%+v: first record is not JSON: %q", l, buf.String())
		}
		if rec.Level != "ERROR" || !strings.Contains(rec.Msg, "not resolved by config") || !strings.HasPrefix(rec.Error, "log.") {
			t.Errorf("%+v: first record = %+v", l, rec)
		}
	}
	if got := logLevel(""); got != slog.LevelDebug {
		t.Errorf("logLevel(\"\") = %v, want debug (nothing hidden)", got)
	}
	if got := logLevel("warn"); got != slog.LevelWarn {
		t.Errorf("logLevel(warn) = %v", got)
	}
}
