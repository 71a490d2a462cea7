package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/store"
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
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	return &Invites{d: d}, nil
}

func inviteKey(token string) string { return "identity/invite/" + hashToken(token) }

// Create makes a single-use invite for email valid for InviteTTL and returns
// its token (for `gatehouse enroll-link USER`, which builds
// PUBLIC_URL/enroll?invite=TOKEN).
func (i *Invites) Create(ctx context.Context, email string) (string, error) {
	email = normEmail(email)
	if !plausibleEmail(email) {
		return "", errors.New("identity: invite: not an email address")
	}
	tok, err := randomToken(32)
	if err != nil {
		return "", err
	}
	if err := i.d.Store.Set(ctx, inviteKey(tok), []byte(email), InviteTTL); err != nil {
		return "", fmt.Errorf("store invite: %w", err)
	}
	if err := i.d.record(ctx, audit.Event{Type: EventInvite, Resource: "user:" + email, Action: "create", Decision: audit.Allow}); err != nil {
		_ = i.d.Store.Delete(ctx, inviteKey(tok))
		return "", err
	}
	return tok, nil
}

// check reports (ErrForbidden) unless token is a live invite for email.
func (i *Invites) check(ctx context.Context, token, email string) error {
	if token == "" || len(token) > 128 {
		return fmt.Errorf("%w: enrolment needs an invite link", ErrForbidden)
	}
	v, err := i.d.Store.Get(ctx, inviteKey(token))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: invite unknown, used or expired", ErrForbidden)
	}
	if err != nil {
		return fmt.Errorf("read invite: %w", err)
	}
	if string(v) != normEmail(email) {
		return fmt.Errorf("%w: invite is for another user", ErrForbidden)
	}
	return nil
}

// consume uses up the invite behind tokenHash for email.
func (i *Invites) consume(ctx context.Context, tokenHash, email string) error {
	v, err := i.d.Store.GetDel(ctx, "identity/invite/"+tokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: invite unknown, used or expired", ErrForbidden)
	}
	if err != nil {
		return fmt.Errorf("consume invite: %w", err)
	}
	if string(v) != normEmail(email) {
		return fmt.Errorf("%w: invite is for another user", ErrForbidden)
	}
	return nil
}

// plausibleEmail is a sanity check on an email used as a key: one "@" with
// text on both sides, printable ASCII or UTF-8 without spaces, at most 254
// bytes.
func plausibleEmail(e string) bool {
	if len(e) < 3 || len(e) > 254 {
		return false
	}
	at := -1
	for i, r := range e {
		if r <= 0x20 || r == 0x7f || r == '/' || r == '\\' || (r >= 0x80 && r < 0xa0) || r == 0xfffd {
			return false
		}
		if r == '@' {
			at = i
		}
	}
	return at > 0 && at < len(e)-1
}
