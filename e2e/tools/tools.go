//go:build tools

// Package tools pins the Dex version that the end-to-end tests and the demo
// build. It is a separate module so that Dex's replace directives and
// dependencies stay out of Gatehouse's own go.mod.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
