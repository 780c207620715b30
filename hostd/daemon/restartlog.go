package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
)

// restartLog writes the restart events an operator looks for in the journal:
// a scheduled restart, its outcome, and a rollback. Renders, logins and
// Vault requests are logged where they happen.
type restartLog struct{ logger *slog.Logger }

func (l restartLog) Publish(e event.Event) {
	switch e := e.(type) {
	case event.Pending:
		l.logger.Info("restart scheduled", "unit", e.Unit, "due", e.Due.Format(time.RFC3339), "changed", e.Cause)
	case event.Restart:
		l.logger.Log(context.Background(), restartLevel(e), restartMessage(e), restartAttrs(e)...)
	}
}

func restartLevel(e event.Restart) slog.Level {
	switch {
	case e.Result == event.ResultRollbackFailed:
		return slog.LevelError
	case e.Err != "":
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}

func restartMessage(e event.Restart) string {
	switch e.Result {
	case event.ResultRolledBack:
		return "rolled back: the unit runs on the previous files"
	case event.ResultRollbackFailed:
		return "rollback failed: the unit is not healthy on the previous files either"
	case event.ResultRejected:
		return "content the unit did not survive came again: previous files kept, no restart"
	case event.ResultError:
		return "restart not accepted by systemd; will retry"
	case event.ResultNotRunning:
		return "unit not running: not restarted; it reads the new files when it is started"
	case event.ResultDone:
		return "restarted unit"
	case event.ResultUnconfirmed:
		return "restarted, but the unit's state could not be read; will retry"
	}
	if rollout.RetriedLater(e.Result) {
		return "restart said nothing about the new files; will retry"
	}
	return "restart failed"
}

func restartAttrs(e event.Restart) []any {
	attrs := []any{"unit", e.Unit, "result", e.Result, "duration", e.Duration.Round(time.Millisecond), "state", e.ActiveState + "/" + e.SubState}
	if e.Err != "" {
		attrs = append(attrs, "err", e.Err)
	}
	return attrs
}
