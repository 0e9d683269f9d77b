package redisengine

import (
	"context"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/testutil"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

func TestPresence(t *testing.T) {
	r := redistest.Start(t)
	o := opts(r.Addr())
	o.OnlineTTL, o.OnlineDelta = 200*time.Millisecond, 300*time.Millisecond
	a := newEngine(t, o)
	b := newEngine(t, o)
	c := newEngine(t, o)
	waitReady(t, a)
	waitReady(t, b)
	waitReady(t, c)
	ctx := context.Background()

	if first, err := a.UserConnected(ctx, "7", "1"); err != nil || !first {
		t.Fatalf("first connection: %v, %v", first, err)
	}
	// Another process's connection of the same user is not the first.
	if first, err := b.UserConnected(ctx, "7", "1"); err != nil || first {
		t.Fatalf("second connection: %v, %v", first, err)
	}
	if got, err := b.LastSeen(ctx, []string{"7", "8"}); err != nil || len(got) != 1 || got["7"] != 0 {
		t.Fatalf("LastSeen = %v, %v; want 7 online, 8 absent", got, err)
	}

	// A process that stops refreshing (a crash) loses its users.
	if first, _ := c.UserConnected(ctx, "9", "1"); !first {
		t.Fatal("user 9 not first")
	}
	c.Close()
	testutil.WaitFor(t, "crashed process's user lapses", func() bool {
		got, err := a.LastSeen(ctx, []string{"9"})
		_, online := got["9"]
		return err == nil && !online
	})
	// User 9 connected after user 7 and has lapsed: the first lifetime of
	// user 7's connections is over, and the refresh kept them.
	if got, _ := a.LastSeen(ctx, []string{"7"}); got["7"] != 0 {
		t.Fatalf("refreshed user = %v; want online", got)
	}

	if last, err := a.UserDisconnected(ctx, "7", "1"); err != nil || last {
		t.Fatalf("disconnect of one of two: %v, %v", last, err)
	}
	if last, err := b.UserDisconnected(ctx, "7", "1"); err != nil || !last {
		t.Fatalf("disconnect of the last: %v, %v", last, err)
	}
	if got, err := a.LastSeen(ctx, []string{"7"}); err != nil || len(got) != 1 || got["7"] < 0 || got["7"] > 2 {
		t.Fatalf("LastSeen after leaving = %v, %v", got, err)
	}
	// A second disconnect of the same connection changes nothing.
	if last, err := b.UserDisconnected(ctx, "7", "1"); err != nil || last {
		t.Fatalf("repeated disconnect: %v, %v", last, err)
	}
}
