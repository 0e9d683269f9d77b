package engine

import (
	"context"
	"testing"

	"github.com/pushpull/pushpull/internal/hub"
	"github.com/pushpull/pushpull/internal/store"
)

func TestLocalPresence(t *testing.T) {
	l := NewLocal(store.NewMemory(store.DefaultTTLs, nil), hub.New(), nil, "uid")
	ctx := context.Background()
	if got, _ := l.LastSeen(ctx, []string{"1"}); len(got) != 0 {
		t.Fatalf("never seen = %v", got)
	}
	if first, _ := l.UserConnected(ctx, "1", "a"); !first {
		t.Fatal("first connection not first")
	}
	if first, _ := l.UserConnected(ctx, "1", "b"); first {
		t.Fatal("second connection first")
	}
	if got, _ := l.LastSeen(ctx, []string{"1", "2"}); len(got) != 1 || got["1"] != 0 {
		t.Fatalf("online = %v", got)
	}
	if last, _ := l.UserDisconnected(ctx, "1", "a"); last {
		t.Fatal("one of two reported last")
	}
	if last, _ := l.UserDisconnected(ctx, "1", "x"); last {
		t.Fatal("unknown connection reported last")
	}
	if last, _ := l.UserDisconnected(ctx, "1", "b"); !last {
		t.Fatal("last connection not last")
	}
	if got, _ := l.LastSeen(ctx, []string{"1"}); len(got) != 1 || got["1"] < 0 {
		t.Fatalf("past = %v", got)
	}
}
