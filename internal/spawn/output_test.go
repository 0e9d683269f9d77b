package spawn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The listening lines are read from both of serve's log formats, whatever
// the server names hold, and nothing else counts as one.
func TestListening(t *testing.T) {
	want := []Listener{
		{Server: "sub", Addr: "127.0.0.1:8010"},
		{Server: `a "quoted" name=x`, Addr: "[::1]:9010", TLS: true},
	}
	for name, handler := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(handler(&b))
		log.Warn("unknown config key ignored", "key", "listening")
		for _, l := range want {
			log.Info("listening", "server", l.Server, "addr", l.Addr, "tls", l.TLS)
		}
		log.Info("listening", "server", "no address")
		log.Info("started", "addr", "127.0.0.1:1")
		b.WriteString("msg=listening addr=\"unterminated\n{\"msg\":\"listening\",\n")
		got := Listening(strings.SplitAfter(b.String(), "\n"))
		if !slices.Equal(got, want) {
			t.Errorf("%s: %+v from\n%s\nwant %+v", name, got, b.String(), want)
		}
	}
	if p := want[1].Port(); p != 9010 {
		t.Errorf("port of %s: %d", want[1].Addr, p)
	}
}

// A wait sees lines written in pieces, before or after it began; it gives
// up when the writer's source ends, or at ctx's deadline.
func TestOutputWait(t *testing.T) {
	line := `level=INFO msg=listening server=%s addr=127.0.0.1:%d tls=false` + "\n"
	synctest.Test(t, func(t *testing.T) {
		o := &Output{}
		fmt.Fprintf(o, line, "sub", 1)
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			text := fmt.Sprintf(line, "pub", 2)
			for i := range text {
				synctest.Wait() // the wait has begun, and sees each piece
				o.Write([]byte(text[i : i+1]))
			}
		}()
		ls, err := o.WaitListening(t.Context(), 2, ended)
		if err != nil || len(ls) != 2 || ls[0].Addr != "127.0.0.1:1" || ls[1].Server != "pub" {
			t.Fatalf("got %+v, %v; want sub and pub", ls, err)
		}
		<-ended
		if _, err := o.WaitListening(t.Context(), 3, ended); !errors.Is(err, ErrEnded) {
			t.Errorf("a third listener after the output ended: %v; want ErrEnded", err)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := (&Output{}).WaitListening(ctx, 1, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("no listener by the deadline: %v; want DeadlineExceeded", err)
		}
	})
}
