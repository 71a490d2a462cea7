package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

type peerKey struct{}

// peer is the credentials of the process on the other end of the socket.
type peer struct {
	uid uint32
	err error
}

// withPeer records the connecting process's uid (SO_PEERCRED) in the
// connection's context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return context.WithValue(ctx, peerKey{}, peer{err: errors.New("not a unix socket")})
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return context.WithValue(ctx, peerKey{}, peer{err: err})
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		credErr = err
	}
	if credErr != nil {
		return context.WithValue(ctx, peerKey{}, peer{err: credErr})
	}
	return context.WithValue(ctx, peerKey{}, peer{uid: cred.Uid})
}

// peerAllowed accepts only our own uid and root: the file mode already says
// so, and this check holds even if someone loosens the mode.
func peerAllowed(ctx context.Context) error {
	p, ok := ctx.Value(peerKey{}).(peer)
	if !ok || p.err != nil {
		return errors.New("cannot identify the calling process")
	}
	if p.uid != 0 && p.uid != uint32(os.Getuid()) {
		return fmt.Errorf("uid %d may not use the control socket", p.uid)
	}
	return nil
}

type callerKey struct{}

// WithCaller returns ctx naming who runs a command, for the audit log.
func WithCaller(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, callerKey{}, who)
}

// Caller names who runs the command in ctx: "cli:<user>" for a command
// that came over the socket (from the peer's uid) or ran in-process.
func Caller(ctx context.Context) string {
	if who, ok := ctx.Value(callerKey{}).(string); ok {
		return who
	}
	return "cli:unknown"
}

// CallerForUID names a local user for the audit log.
func CallerForUID(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return "cli:" + u.Username
	}
	return fmt.Sprintf("cli:uid-%d", uid)
}
