package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// tally collects one phase's outcomes from many workers.
type tally struct {
	mu       sync.Mutex // guards everything below
	lat      []time.Duration
	bytes    int64
	errs     map[string]int
	examples map[string][]string // up to 3 messages per kind
	perRep   [2]int
}

func newTally() *tally {
	return &tally{errs: map[string]int{}, examples: map[string][]string{}}
}

// ok records one successful unit of work on replica rep.
func (t *tally) ok(rep int, d time.Duration, n int64) {
	t.mu.Lock()
	t.lat = append(t.lat, d)
	t.bytes += n
	t.perRep[rep]++
	t.mu.Unlock()
}

// fail records one failure of kind (a short stable name) with its message.
func (t *tally) fail(rep int, kind, msg string) {
	t.mu.Lock()
	kind = fmt.Sprintf("replica %s: %s", string(rune('A'+rep)), kind)
	t.errs[kind]++
	if len(t.examples[kind]) < 3 {
		t.examples[kind] = append(t.examples[kind], msg)
	}
	t.mu.Unlock()
}

func (t *tally) count() int64 { return int64(len(t.lat)) }

func (t *tally) errCount() int {
	n := 0
	for _, v := range t.errs {
		n += v
	}
	return n
}

// percentile returns the p-th percentile (0..100) of the latencies.
func (t *tally) percentile(p float64) time.Duration {
	if len(t.lat) == 0 {
		return 0
	}
	s := slices.Clone(t.lat)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// errorReport lists the errors by kind with examples.
func (t *tally) errorReport() string {
	if len(t.errs) == 0 {
		return "    errors: none\n"
	}
	kinds := make([]string, 0, len(t.errs))
	for k := range t.errs {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "    errors: %d\n", t.errCount())
	for _, k := range kinds {
		fmt.Fprintf(&b, "      %6d  %s\n", t.errs[k], k)
		for _, ex := range t.examples[k] {
			fmt.Fprintf(&b, "              e.g. %s\n", ex)
		}
	}
	return b.String()
}
