package assertion

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// subjectKey is the context key of the admitted identity.
type subjectKey struct{}

// WithSubject returns ctx carrying who, the identity the gate admitted for
// this request. The gate (package portal) sets it; the hop to the upstream
// (package proxy) reads it with SubjectFrom and asserts it to the upstream.
// It lives here because both may import this package and neither may
// import the other.
func WithSubject(ctx context.Context, who authz.Subject) context.Context {
	return context.WithValue(ctx, subjectKey{}, who)
}

// SubjectFrom returns the identity WithSubject put into ctx. ok is false
// when there is none, or it has no email: the hop then refuses the request.
func SubjectFrom(ctx context.Context) (who authz.Subject, ok bool) {
	who, ok = ctx.Value(subjectKey{}).(authz.Subject)
	return who, ok && who.Email != ""
}
