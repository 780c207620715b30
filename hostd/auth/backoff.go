package auth

import (
	"math/rand/v2"
	"time"
)

// backoff returns the wait before attempt number failures+1: min doubled per
// failure, capped at max, with "equal jitter" (a random point in the upper
// half) so that a fleet of hosts does not retry in step.
func backoff(failures int, min, max time.Duration, random func() float64) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + time.Duration(random()*float64(d-half))
}

func randFloat() float64 { return rand.Float64() }
