package main

import (
	"fmt"
	"io"
)

func cmdAudit(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gatehouse audit: not wired yet")
	return 1
}
