package runtest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingTB records what UntilEnd reports, and runs its cleanups on end.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Cleanup(f func()) {
	r.cleanups = append(r.cleanups, f)
}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, strings.TrimSpace(format))
}
func (r *recordingTB) end() []string {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return r.errs
}

func TestUntilEndCancelsAndAcceptsTheWantedError(t *testing.T) {
	for _, c := range []struct {
		name string
		want error
		run  func(context.Context) error
	}{
		{"ctx error", context.Canceled, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{"wrapped", context.Canceled, func(ctx context.Context) error { <-ctx.Done(); return errors.Join(errors.New("stopped"), ctx.Err()) }},
		{"nil", nil, func(ctx context.Context) error { <-ctx.Done(); return nil }},
	} {
		tb := &recordingTB{TB: t}
		UntilEnd(tb, 5*time.Second, c.want, c.run)
		if errs := tb.end(); len(errs) != 0 {
			t.Errorf("%s: %v", c.name, errs)
		}
	}
}

func TestUntilEndFailsOnTheWrongErrorOrNoReturn(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	for _, c := range []struct {
		name, says string
		want       error
		run        func(context.Context) error
	}{
		{"nil wanted", "returned", nil, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{"ctx error wanted", "returned", context.Canceled, func(ctx context.Context) error { <-ctx.Done(); return nil }},
		{"hangs", "did not return", nil, func(context.Context) error { <-block; return nil }},
	} {
		tb := &recordingTB{TB: t}
		UntilEnd(tb, 50*time.Millisecond, c.want, c.run)
		errs := tb.end()
		if len(errs) != 1 || !strings.HasPrefix(errs[0], c.says) {
			t.Errorf("%s: reported %q, want one error starting %q", c.name, errs, c.says)
		}
	}
}
