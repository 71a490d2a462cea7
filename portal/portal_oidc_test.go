package portal

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// ptOIDC stands in for the IdP: BeginLogin hands out a state, FinishLogin
// accepts code "ok:<email>:<group,group>" with the right flow cookie.
type ptOIDC struct {
	mu    sync.Mutex
	flows map[string]ptFlow // state -> flow
	n     int
	// begun records every return URL BeginLogin was given.
	begun []string
}

type ptFlow struct{ flow, returnTo string }

func (o *ptOIDC) BeginLogin(_ context.Context, returnTo string) (string, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	state := fmt.Sprintf("state%d", o.n)
	flow := fmt.Sprintf("flow%d", o.n)
	if o.flows == nil {
		o.flows = map[string]ptFlow{}
	}
	o.flows[state] = ptFlow{flow: flow, returnTo: returnTo}
	o.begun = append(o.begun, returnTo)
	return "https://idp.test/auth?state=" + state, flow, nil
}

func (o *ptOIDC) FinishLogin(_ context.Context, state, code, flow string) (*identity.Login, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, ok := o.flows[state]
	delete(o.flows, state)
	if !ok {
		return nil, fmt.Errorf("%w: unknown state", identity.ErrNotFound)
	}
	if f.flow != flow {
		return nil, fmt.Errorf("%w: flow cookie mismatch", identity.ErrForbidden)
	}
	parts := strings.SplitN(code, ":", 3)
	if len(parts) != 3 || parts[0] != "ok" {
		return nil, fmt.Errorf("%w: bad code", identity.ErrForbidden)
	}
	var groups []string
	if parts[2] != "" {
		groups = strings.Split(parts[2], ",")
	}
	return &identity.Login{Email: parts[1], Subject: "sub-" + parts[1], Groups: groups, ReturnTo: f.returnTo, At: time.Now()}, nil
}

func (o *ptOIDC) lastBegun() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.begun) == 0 {
		return ""
	}
	return o.begun[len(o.begun)-1]
}
