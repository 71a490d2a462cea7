package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// checkRecordings asks each replica (through its control socket) for the
// recordings list, which comes from the shared index in Redis: both must
// list the same IDs, at least want of them (the SSH sessions that
// succeeded). Then each replica verifies (signature and hash chain) the
// first and the last recording listed (written by either replica), from
// the shared directory.
func (e *env) checkRecordings(want int) (string, []string) {
	var problems []string
	lists := [2]map[string]string{} // id -> target, per replica
	var first, last string          // in replica A's list
	for i, r := range e.replicas {
		out, err := exec.Command(e.bin, "recordings", "list", "--json", "--config", r.cfgPath).Output()
		if err != nil {
			return "", []string{fmt.Sprintf("replica %s: gatehouse recordings list: %v", r.name, err)}
		}
		lists[i] = map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct{ ID, Target string }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				problems = append(problems, fmt.Sprintf("replica %s: recordings list line %.100q: %v", r.name, sc.Text(), err))
				continue
			}
			lists[i][rec.ID] = rec.Target
			if i == 0 {
				if first == "" {
					first = rec.ID
				}
				last = rec.ID
			}
		}
	}
	if len(lists[0]) != len(lists[1]) {
		problems = append(problems, fmt.Sprintf("replica A lists %d recordings, B %d", len(lists[0]), len(lists[1])))
	}
	for id := range lists[0] {
		if _, ok := lists[1][id]; !ok {
			problems = append(problems, "recording "+id+" listed by A, not by B")
		}
	}
	if len(lists[0]) < want {
		problems = append(problems, fmt.Sprintf("%d recordings listed, want at least %d (one per SSH session)", len(lists[0]), want))
	}
	for _, r := range e.replicas {
		for _, id := range []string{first, last} {
			if id == "" {
				continue
			}
			out, err := exec.Command(e.bin, "recordings", "verify", "--config", r.cfgPath, id).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "OK") {
				problems = append(problems, fmt.Sprintf("replica %s: gatehouse recordings verify %s: %v: %s", r.name, id, err, out))
			}
		}
	}
	return fmt.Sprintf("recordings: both replicas list the same %d recordings (shared index); verify on A and B: %s\n",
		len(lists[0]), map[bool]string{true: "OK", false: "FAILED"}[len(problems) == 0]), problems
}
