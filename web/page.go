package web

import "time"

// Page is the data every template receives. Body holds the page-specific
// part; its type is named in each template's comment.
type Page struct {
	Title     string
	Email     string // the signed-in person, or "" when nobody is
	CSRF      string // token for forms (field "csrf") and fetch (header X-CSRF-Token)
	RequestID string // shown on error and denied pages, and logged
	Script    bool   // include the WebAuthn script
	// Home is the brand link's URL (the portal); "" means "/".
	Home string
	// Assets is the URL prefix of the static assets; "" means StaticPrefix.
	// Pages served on an application's host use that host's reserved path.
	Assets string
	Body   any
}

// Home is the body of the portal's home page.
type Home struct {
	Apps     []App
	Keys     []Key
	Sessions []Session
}

// CanRemoveKey reports whether a key may be removed: never the last one.
func (h Home) CanRemoveKey() bool { return len(h.Keys) > 1 }

// App is one route this person may open.
type App struct {
	Name string
	URL  string
}

// Key is one enrolled security key or passkey.
type Key struct {
	ID       string
	Name     string
	Created  time.Time
	LastUsed time.Time
}

// Session is one of the person's active sessions.
type Session struct {
	ID       string // an opaque handle, never the session secret
	Created  time.Time
	LastSeen time.Time
	Source   string
	Agent    string
	Current  bool
}

// Ceremony modes.
const (
	ModeEnroll = "enroll" // first key, right after SSO
	ModeAssert = "assert" // sign-in with an enrolled key
	ModeStepUp = "stepup" // fresh assertion for a route that wants one
	ModeAdd    = "add"    // assertion with an existing key, then a new key
)

// Ceremony is the body of the enrol and assert pages. The endpoint URLs are
// handed to the script through data- attributes.
type Ceremony struct {
	Mode           string
	Resource       string // what the person is about to open, if known
	AssertBegin    string
	AssertFinish   string
	RegisterBegin  string
	RegisterFinish string
}

// Approve is the body of the SSH approval page. It never carries the
// verification code: the person types the one their terminal shows
// (number matching), so that approving a forwarded link blind fails.
type Approve struct {
	Action      string // the form's POST URL
	Fingerprint string
	Target      string
	Login       string
	Source      string    // where the SSH connection comes from
	Created     time.Time // when it asked for approval
	Expires     time.Time
	// Error says why the last attempt was refused ("" for none), and
	// AttemptsLeft how many wrong codes remain before the approval is
	// cancelled.
	Error        string
	AttemptsLeft int
	AssertBegin  string
	AssertFinish string
}

// Denied is the body of the page shown when policy refuses a request.
type Denied struct {
	Resource string   // e.g. the route's name
	Reason   string   // authz's reason, safe to show
	Rule     string   // the rule that decided
	Ask      []string // whom to ask: the admins' groups and emails
}

// Login is the body of the sign-in interstitial.
type Login struct {
	LoginURL string
	Notice   string
}

// Message is the body of a plain notice or error page.
type Message struct {
	Status   int
	Heading  string
	Text     string
	Link     string
	LinkText string
}

// ReviewList is the body of the reviewer console's list page.
type ReviewList struct {
	Filter   ReviewFilter
	Statuses []string // the status choices, in order
	Rows     []ReviewRow
	// More says the list stopped at Limit rows: narrow the filter.
	More  bool
	Limit int
	// CanTerminate shows the Terminate buttons of live sessions.
	CanTerminate bool
}

// ReviewFilter is the list page's filter form, as typed (so a refused
// value is shown back), and Error says what was wrong with it.
type ReviewFilter struct {
	User, Target, Login, Status string
	Since, Until                string // datetime-local values, UTC
	MinDuration, MaxDuration    string // Go durations ("90s", "1h")
	Query                       string
	Error                       string
}

// ReviewRow is one recorded session in the reviewer console.
type ReviewRow struct {
	ID, User, Target, Login, Source, Kind, Command string
	Status, EndReason                              string
	Start, End                                     time.Time
	Duration                                       string
	Cols, Rows                                     int // terminal size at the start
	Bytes                                          int64
	Live                                           bool
	PlayURL, WatchURL, TerminateURL, LockURL       string
}

// ReviewPlayer is the body of the player page. The player script reads
// its sources from data- attributes: CastURL (a recording) or, when
// watching, LiveURL (Server-Sent Events of asciicast v2 lines).
type ReviewPlayer struct {
	Session     ReviewRow
	CastURL     string
	LiveURL     string // set when watching a live session
	PlayerReady bool   // the player's files are in the binary (PlayerBuilt)
	Events      []ReviewEvent
	// EventsError says why the structured events could not be listed.
	EventsError  string
	CanTerminate bool
	// CanLock shows the form that locks the session's person out.
	CanLock bool
	Back    string // the list page
}

// ReviewEvent is one structured event beside the player. Offset is its
// time in seconds from the start of the recording, where the player seeks
// when the event is clicked.
type ReviewEvent struct {
	Offset float64
	At     string // Offset as m:ss
	Time   time.Time
	Type   string
	Fields []Field
}

// Field is one name and value of an event, in a stable order.
type Field struct{ Name, Value string }
