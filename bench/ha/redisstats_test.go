package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCmdStatsDelta(t *testing.T) {
	before, err := parseCmdStats("# Commandstats\r\ncmdstat_get:calls=10,usec=5,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=1,usec=9\r\n")
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseCmdStats("cmdstat_get:calls=15,usec=7\r\ncmdstat_info:calls=3,usec=9\r\ncmdstat_dbsize:calls=2,usec=1\r\ncmdstat_client|setname:calls=4,usec=1\r\ncmdstat_set:calls=0,usec=0\r\n")
	if err != nil {
		t.Fatal(err)
	}
	got := delta(before, after)
	want := cmdStats{"get": 5, "client|setname": 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delta (-want +got):\n%s", diff)
	}
	if got.total() != 9 {
		t.Errorf("total = %d, want 9", got.total())
	}
	if _, err := parseCmdStats("cmdstat_get:calls=x"); err == nil {
		t.Error("parseCmdStats accepted calls=x")
	}
}

func TestAppendFolded(t *testing.T) {
	var out []string
	for _, l := range []string{"ping", "ping", "ping", "get k", "ping", "get k", "get k"} {
		out = appendFolded(out, l)
	}
	want := []string{"ping ×3", "get k", "ping", "get k ×2"}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("appendFolded (-want +got):\n%s", diff)
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"gatehouse:identity/session/AbCdEfGhIjKlMnOpQrSt":     "gatehouse:identity/session/<id>",
		"gatehouse:lock/key/SHA256:nLeTPNIM/3iKkT/wtCBx+abc=": "gatehouse:lock/key/<id>",
		"gatehouse:identity/keybind/SHA256%3AnLeT%2F3iK":      "gatehouse:identity/keybind/<id>",
		"gatehouse:lock/target/bench":                         "gatehouse:lock/target/bench",
	} {
		if got := randomPart.ReplaceAllString(in, "<id>"); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}
