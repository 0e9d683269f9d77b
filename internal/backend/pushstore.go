package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/pushpull/pushpull/internal/webpush"
)

// PushSub is one Web Push subscription of a user: a browser (or an
// installation of an application, AppID) that receives notifications.
type PushSub struct {
	ID      string               `json:"id"` // from the endpoint: registering it again replaces it
	User    string               `json:"user"`
	AppID   string               `json:"appId,omitempty"`
	Sub     webpush.Subscription `json:"sub"`
	Created time.Time            `json:"created"`
}

// pushSubID names the subscription of endpoint.
func pushSubID(endpoint string) string {
	h := sha256.Sum256([]byte(endpoint))
	return hex.EncodeToString(h[:16])
}

// PushItem is one notification waiting to go to one subscription.
type PushItem struct {
	ID       string    `json:"id"`
	User     string    `json:"user"`
	Sub      string    `json:"sub"` // PushSub.ID
	Tag      string    `json:"tag,omitempty"`
	SubTag   string    `json:"subTag,omitempty"`
	Payload  []byte    `json:"payload"` // the plaintext, encrypted when sent
	TTL      int64     `json:"ttl"`     // seconds the push service keeps it
	Urgency  string    `json:"urgency,omitempty"`
	Deferred bool      `json:"deferred,omitempty"` // sent when due only if its user is still away
	Created  time.Time `json:"created"`
	Due      time.Time `json:"due"`
	Attempts int       `json:"attempts,omitempty"`

	claim int64 // the claim that handed it out (Redis: checked when it is finished)
}

// expired reports whether the item's TTL has passed: the push service
// would have dropped it by now, and so does the queue.
func (it PushItem) expired(now time.Time) bool {
	return !now.Before(it.Created.Add(time.Duration(it.TTL) * time.Second))
}

// ErrQueueFull refuses notifications past webPush.maxQueue.
var ErrQueueFull = errors.New("the Web Push queue is full (webPush.maxQueue)")

// PushStore keeps Web Push subscriptions and the queue of notifications.
// The memory implementation serves one process and is kept in its
// snapshot; the Redis one is shared by every process on the Redis, and
// hands each due item to one of them (a claim holds it for a lease, after
// which an item whose process died comes due again).
type PushStore interface {
	// AddSub registers s (replacing a subscription with its ID), and
	// drops the user's oldest past max.
	AddSub(ctx context.Context, s PushSub, max int) error
	// RemoveSub forgets user's subscription id; ok is false when there
	// was none.
	RemoveSub(ctx context.Context, user, id string) (ok bool, err error)
	// Subs returns the subscriptions of each user (those of appID only,
	// unless appID is "").
	Subs(ctx context.Context, users []string, appID string) (map[string][]PushSub, error)
	// Sub returns one subscription.
	Sub(ctx context.Context, user, id string) (PushSub, bool, error)

	// Enqueue adds items, unless the queue would then hold more than max
	// (ErrQueueFull). An item with a tag replaces the waiting items of
	// its user and subscription with that tag: the newer notification
	// stands for the older.
	Enqueue(ctx context.Context, items []PushItem, max int) error
	// Claim hands out up to n items due at now, each to this caller
	// only, until now+lease.
	Claim(ctx context.Context, now time.Time, lease time.Duration, n int) ([]PushItem, error)
	// Finish removes a claimed item: sent, dropped or given up.
	Finish(ctx context.Context, it PushItem) error
	// Reschedule puts a claimed item back, due at it.Due, with its
	// attempts.
	Reschedule(ctx context.Context, it PushItem) error
	// Cancel removes the waiting items of user whose tag or sub-tag is
	// one of tags, and returns how many.
	Cancel(ctx context.Context, user string, tags []string) (int, error)
	// QueueStats returns how many items wait and when the oldest was
	// queued (zero when none).
	QueueStats(ctx context.Context) (n int, oldest time.Time, err error)
}
