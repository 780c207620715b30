package daemon

import (
	"io"
	"log/slog"
	"strings"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
)

// NewLogger returns the logger hostd logs through, writing text or JSON to w
// as cfg says, and the level variable behind it, so a reload can change the
// level (give it to Run with WithLogLevel).
func NewLogger(w io.Writer, cfg config.Log) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// parseLevel maps config's level names to slog levels; anything else is
// info (config has already rejected it).
func parseLevel(name string) slog.Level {
	switch strings.ToLower(name) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
