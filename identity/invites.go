package identity

import (
	"context"
	"time"
)

// InviteTTL is how long an enrolment invite stays valid.
const InviteTTL = 24 * time.Hour

// Invites are one-time tokens for a first enrolment when
// webauthn.enrollment is "invite". Tokens are stored only as hashes.
type Invites struct {
	d Deps
}

// NewInvites returns an Invites.
func NewInvites(d Deps) (*Invites, error) {
	return nil, errNotReady
}

// Create makes a single-use invite for email valid for InviteTTL and returns
// its token (for `gatehouse enroll-link USER`, which builds
// PUBLIC_URL/enroll?invite=TOKEN).
func (i *Invites) Create(ctx context.Context, email string) (string, error) {
	return "", errNotReady
}
