package sigsci

import (
	"context"
	"time"
)

// SetSleep replaces the client's wait between attempts, so tests observe the
// waits instead of sleeping them.
func SetSleep(c *Client, sleep func(context.Context, time.Duration) error) { c.sleep = sleep }
