package plugin

import (
	"fmt"
	"io"
	"strconv"
)

// formatRedacted prints v's String, which leaves out the secret v holds,
// for every fmt verb and flag (%q quotes it). Without it, a verb String
// does not answer (%d, %o) prints the fields as they are, secret and all.
func formatRedacted(f fmt.State, verb rune, v fmt.Stringer) {
	s := v.String()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}
