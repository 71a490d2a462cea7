// Package sshgw is Gatehouse's SSH bastion. It terminates the stock OpenSSH
// client's connection (gliderlabs/ssh on x/crypto/ssh), proves who is
// connecting with a key binding or a browser approval (SSO plus WebAuthn),
// applies the target's policy to every channel and request, and opens its
// own connection to the target with a short-lived certificate from the
// gateway's user CA.
//
// User names select what a connection does: "LOGIN@TARGET" opens a session
// as LOGIN on TARGET; a name without "@" lists the targets the person may
// use, or, through ProxyJump (a direct-tcpip channel to a target), starts a
// second SSH handshake that the gateway terminates itself, presenting a host
// certificate for the target from its own host CA.
//
// Every session channel to a target is recorded (see record.go) unless the
// target has record: off: the target's output as terminal output, exec
// commands, exit status, window size, SFTP and legacy scp file operations,
// and the end reason; forwards as events in one recording per connection.
// Nothing moves until the recording has started, and a session whose
// recording fails ends with a message. What the client types is never
// recorded: the gateway cannot see whether the target's terminal echoes,
// so it cannot tell a password typed with echo off from other input, and
// not recording input is the only way never to store one.
//
// Everything fails closed: an unknown target, channel type, request,
// subsystem, environment variable or forward destination is refused, and
// target host keys are pinned or certified, never trusted on first use.
package sshgw
