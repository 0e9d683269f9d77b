package backend

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Channel is one issued channel: a private id, the public id paired with
// it (protocols 4 and 5), when it was issued and when writes to it stop
// and a new channel replaces it.
type Channel struct {
	ID     string
	Public string
	Start  time.Time
	End    time.Time
}

// Owner is what one owner (a user, or the shared channel of all users)
// holds: the channel messages go to now and, after a rotation, the one it
// replaced, which keeps receiving until its storage time ends so that a
// client still reading it loses nothing.
type Owner struct {
	Current  Channel
	Previous *Channel
}

// State keeps the issued channels, the watch tags and the last-seen times.
// The memory implementation serves one process; the Redis one serves every
// process sharing the Redis, and its Issue is one atomic script, so a
// rotation happens once however many processes ask at the same moment.
type State interface {
	// Load returns the owners' channels; an owner without any (never
	// issued, or expired) is absent.
	Load(ctx context.Context, owners []string, now time.Time) (map[string]Owner, error)
	// Issue returns owner's channels, installing fresh as the current
	// channel when there is none or when the current one's End has come;
	// the replaced channel becomes Previous and rotated is true. keep is
	// how long after its Start a channel stays readable.
	Issue(ctx context.Context, owner string, fresh Channel, now time.Time, keep time.Duration) (o Owner, rotated bool, err error)
	// Due returns up to n owners whose current channel has ended by now.
	Due(ctx context.Context, now time.Time, n int) ([]string, error)
	// Undue removes owner from the due list if its current channel has
	// still ended by now: it rotates when it is next used instead.
	Undue(ctx context.Context, owner string, now time.Time) error

	// Watch makes user watch tags until until; a watch already there is
	// renewed.
	Watch(ctx context.Context, user string, tags []string, until time.Time) error
	// Extend renews until until the tags user watches now, and reports
	// for each tag whether it was watched.
	Extend(ctx context.Context, user string, tags []string, now, until time.Time) ([]bool, error)
	// Unwatch ends user's watch of tags.
	Unwatch(ctx context.Context, user string, tags []string) error
	// Watchers returns the users watching any of tags at now, once each.
	Watchers(ctx context.Context, tags []string, now time.Time) ([]string, error)

	// Seen records that users were online at t; LastSeen returns the last
	// such time of each user seen (the others are absent).
	Seen(ctx context.Context, users []string, t time.Time) error
	LastSeen(ctx context.Context, users []string) (map[string]time.Time, error)

	Close()
}

// Owner names: users by id, and the one shared channel.
const sharedOwner = "shared"

func userOwner(id string) string { return "user:" + id }

// encode writes a channel as "id|public|startMs|endMs", the form the Redis
// scripts store and read (End last, so a script can find it).
func (c Channel) encode() string {
	return c.ID + "|" + c.Public + "|" + strconv.FormatInt(c.Start.UnixMilli(), 10) + "|" + strconv.FormatInt(c.End.UnixMilli(), 10)
}

var errBadRecord = errors.New("backend: malformed channel record")

func decodeChannel(s string) (Channel, error) {
	f := strings.Split(s, "|")
	if len(f) != 4 {
		return Channel{}, errBadRecord
	}
	start, err1 := strconv.ParseInt(f[2], 10, 64)
	end, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil {
		return Channel{}, errBadRecord
	}
	return Channel{ID: f[0], Public: f[1], Start: time.UnixMilli(start), End: time.UnixMilli(end)}, nil
}

// live drops a previous channel whose storage time has ended.
func (o Owner) live(now time.Time, keep time.Duration) Owner {
	if o.Previous != nil && !now.Before(o.Previous.Start.Add(keep)) {
		o.Previous = nil
	}
	return o
}
