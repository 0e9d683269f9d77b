package e2e

import (
	"path/filepath"
	"testing"
)

// Message ids are unique and increasing across any sequence of restarts
// and crashes: a process killed and started again within one second, and
// a snapshot loaded and then lost to a crash, issue no id twice, and a
// client resuming with an id from before gets what came after it.
func TestIDsNeverRepeatAcrossRestarts(t *testing.T) {
	ch := newChannelID(t)
	t.Run("crash loop", func(t *testing.T) {
		var mids []string
		for i := range 4 {
			srv := startServer(t, map[string]any{})
			publish(t, srv, []string{ch}, command("test", "n", i+1))
			mids = append(mids, newestMID(t, srv, ch))
			kill(t, srv)
		}
		for i := 1; i < len(mids); i++ {
			if mids[i] <= mids[i-1] {
				t.Fatalf("ids after restarts %v: %s does not follow %s", mids, mids[i], mids[i-1])
			}
		}
	})
	t.Run("snapshot then crash", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "history.snapshot")
		cfg := map[string]any{"storage": map[string]any{"snapshot": file}}
		first := startServer(t, cfg)
		publish(t, first, []string{ch}, command("test", "n", 1))
		a := newestMID(t, first, ch)
		first.ExitExpected = true
		first.stop(t) // writes the snapshot

		second := startServer(t, cfg) // loads it
		publish(t, second, []string{ch}, command("test", "n", 2))
		b := newestMID(t, second, ch)
		kill(t, second) // no snapshot written

		third := startServer(t, cfg)
		publish(t, third, []string{ch}, command("test", "n", 3))
		c := newestMID(t, third, ch)
		if !(a < b && b < c) {
			t.Fatalf("ids %s, %s, %s: not increasing", a, b, c)
		}
		// The client that had b resumes and gets what came after it.
		lp, _ := subQuery(third, ch, "mid="+b)
		got := parseEnvelopes(t, longPoll(t, lp).Body)
		if len(got) != 1 || got[0].MID != c {
			t.Fatalf("resuming after %s: got %v; want %s alone", b, got, c)
		}
	})
}

// newestMID returns the id of the newest message on ch (the whole history
// is read from an id older than any).
func newestMID(t *testing.T, srv *Server, ch string) string {
	t.Helper()
	lp, _ := subQuery(srv, ch, "mid=00000000000000000000000000")
	env := parseEnvelopes(t, longPoll(t, lp).Body)
	if len(env) == 0 {
		t.Fatal("no message stored")
	}
	return env[len(env)-1].MID
}

// kill ends srv with SIGKILL, as a crash would, and waits for it to exit.
func kill(t *testing.T, srv *Server) {
	t.Helper()
	srv.ExitExpected = true
	if err := srv.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.proc.Done()
}
